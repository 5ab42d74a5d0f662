//! billrun, the monthly settlement job, as a library: the binary (`src/main.rs`) is a thin
//! shell over [`app::main`], and the tests drive the same modules.
//!
//! The layers, from the inside out (see ARCHITECTURE.md): `domain` holds every rule and is
//! pure; `input` reads and checks files; `store` is the port to a database with a backend per
//! database; `jobs` runs each command's work over any store; `reporting` renders what finance
//! reads; `cli`, `commands` and `app` turn a command line into a job and its output, and
//! `error` maps every failure to an exit code.

pub mod app;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod error;
pub mod gen;
pub mod input;
pub mod jobs;
pub mod metrics_http;
pub mod output;
pub mod progress;
pub mod recorded;
pub mod reporting;
pub mod schedule;
pub mod store;
pub mod webhooks;
