//! The billrun binary: the allocator, then [`billrun::app::main`], which reads the command
//! line and the clock, runs the job and turns its outcome into an exit code.

/// mimalloc rather than glibc's allocator, for Rust and, through its `override` feature, for
/// the bundled SQLite too: SQLite's settle builds a page's rows on one thread and frees them on
/// another, which glibc's malloc serves slowly, and SQLite copies every text value it binds.
/// What it bought is measured in docs/performance.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    billrun::app::main()
}
