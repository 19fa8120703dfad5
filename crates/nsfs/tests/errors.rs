//! Errors say their cause once: a variant with a `#[source]` does not print
//! it in its Display too (an error reporter walks the chain and would print
//! the errno twice), and the errno stays queryable.
use std::error::Error as _;
use std::io;
use std::path::PathBuf;

use nsfs::Error;

const CAUSE: &str = "the-underlying-cause";

fn cause() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, CAUSE)
}

#[test]
fn display_never_repeats_the_source() {
    let path = || PathBuf::from("/run/netns/blue");
    let with_source = [
        Error::PrepareRunDir {
            path: path(),
            source: cause(),
        },
        Error::Create {
            path: path(),
            step: "bind mount",
            source: cause(),
        },
        Error::Attach {
            path: path(),
            pid: 1,
            step: "bind mount",
            source: cause(),
        },
        Error::Remove {
            path: path(),
            source: cause(),
        },
        Error::Open {
            path: path(),
            source: cause(),
        },
        Error::Enter {
            path: path(),
            source: cause(),
        },
        Error::Io {
            op: "read directory",
            path: path(),
            source: cause(),
        },
        Error::Monitor {
            path: path(),
            source: cause(),
        },
        Error::Thread { source: cause() },
    ];
    for err in with_source {
        let shown = err.to_string();
        assert!(
            !shown.contains(CAUSE),
            "{err:?} displays its source: {shown}"
        );
        assert!(!shown.is_empty());
        let source = err.source().expect("a source");
        assert_eq!(source.to_string(), CAUSE);
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }
    let err = Error::Open {
        path: path(),
        source: io::Error::from_raw_os_error(libc::EACCES),
    };
    assert_eq!(
        err.to_string(),
        "cannot open network namespace /run/netns/blue"
    );
    assert_eq!(err.raw_os_error(), Some(libc::EACCES));
}
