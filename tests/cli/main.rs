//! Integration tests: the real `billrun` binary on a real SQLite file, one story per behaviour.
//! All modules compile into this one test binary.

mod harness;

mod accounts_and_packs;
mod archive;
mod arrears;
mod bad_input;
mod billing_zone;
mod catalog;
mod citus;
mod corrections;
mod crash;
mod credits;
mod deploy;
mod estimate;
mod finance;
mod late_usage;
mod limits;
mod metrics;
mod migrations;
mod one_book;
mod operator;
mod recharge;
mod report;
mod retractions;
mod settle;
mod shards;
mod storage;
mod tls;
mod usage_input;
mod webhooks;
mod worker;
