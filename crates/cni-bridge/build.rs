//! Link flags for the `netns-bridge` binary only (the library and the rest
//! of the workspace are untouched): the plugin is one process per CNI call,
//! so what the dynamic loader does at every start counts.

fn main() {
    // A position-dependent executable: the loader has no relative
    // relocations to apply (about 8,000 in the PIE, each one writing to a
    // page of `.data.rel.ro` that then is a private copy), which took 36 of
    // the 169 page faults of a `VERSION` call. rustc's objects are PIC, which
    // links fine into a non-PIE executable. The cost: the executable's own
    // image is not randomised (its libraries, stack and heap still are).
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
