use std::process::ExitCode;

mod allocator;

/// jemalloc: the writer thread frees what request threads allocated, where glibc's malloc spent
/// a third of the writer's time (BENCHMARKS.md). Chosen here, by the binary, so that crates
/// embedding the library (the fuzz target, the benches) pick their own allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    herald::startup::release_memory_with(allocator::release_unused_memory);
    herald::cli::main().await
}
