//! What the `herald` binary does with its allocator beyond choosing it. Not a module of the
//! library (which leaves the allocator to whoever embeds it): `main.rs` includes it, and so does
//! the load generator, which runs the gateway as the binary does.

/// Gives back to the system the pages jemalloc keeps for reuse: an arena's decay time set to 0
/// purges its unused pages at once (jemalloc(3), `arena.<i>.dirty_decay_ms`), and is then set
/// back to what it was. (Writing the same value again purges nothing.)
pub fn release_unused_memory() {
    use tikv_jemalloc_ctl::{arenas, Access, AsName};
    let Ok(count) = arenas::narenas::read() else {
        return;
    };
    for arena in 0..count {
        for decay in ["dirty_decay_ms", "muzzy_decay_ms"] {
            let key = format!("arena.{arena}.{decay}\0");
            let name = key.as_str().name();
            // An arena not in use has no decay time to read: nothing to give back.
            if let Ok(ms) = Access::<isize>::read(name) {
                let _ = name.write(0_isize);
                let _ = name.write(ms);
            }
        }
    }
}
