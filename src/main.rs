fn main() {
    // `provision ... | head` closes the pipe early: end quietly, as Unix tools do, instead
    // of panicking in println! (Rust ignores SIGPIPE by default).
    // SAFETY: called first thing, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(provision::cli::main());
}
