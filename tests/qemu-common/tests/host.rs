//! The same cases on the host, for a quick check and for debugging a failure seen under QEMU:
//! `cargo test` in this directory.

#[test]
fn all_cases_pass_on_the_host() {
    let mut out = String::new();
    let summary = qemu_common::run(&mut out);
    print!("{out}");
    assert!(summary.total() >= 25, "only {} cases", summary.total());
    assert_eq!(summary.failed, 0, "{out}");
}
