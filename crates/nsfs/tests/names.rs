//! Namespace names: every bad name is refused with a typed error before
//! anything touches the filesystem; every name iproute2 accepts works end to
//! end, here and with `ip`.
mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use common::*;
use nsfs::{Error, NAME_MAX, NsName, OpenMode, RunDir};

#[test]
fn every_bad_name_is_refused() {
    let long = "x".repeat(NAME_MAX + 1);
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        (".", "`.` and `..` are not names"),
        ("..", "`.` and `..` are not names"),
        ("/", "contains `/`"),
        ("a/b", "contains `/`"),
        ("a/", "contains `/`"),
        ("/a", "contains `/`"),
        ("../etc", "contains `/`"),
        ("a\0b", "contains NUL"),
        ("\0", "contains NUL"),
        (&long, "longer than 255 bytes"),
    ];
    for &(bad, why) in cases {
        for err in [
            NsName::new(bad).unwrap_err(),
            bad.parse::<NsName>().unwrap_err(),
            NsName::try_from(bad).unwrap_err(),
            NsName::try_from(bad.to_owned()).unwrap_err(),
            NsName::from_os_str(OsStr::new(bad)).unwrap_err(),
        ] {
            match &err {
                Error::InvalidName { name, reason } => {
                    assert_eq!(name, bad);
                    assert_eq!(*reason, why, "{bad:?}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
            assert!(err.to_string().contains(why), "{err}");
        }
    }
    // 255 multi-byte characters are more than 255 bytes.
    assert!(NsName::new("é".repeat(128)).is_err());
    assert!(NsName::new("é".repeat(127)).is_ok());
    let err = NsName::from_os_str(OsStr::from_bytes(b"a\xffb")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidName {
                reason: "not valid UTF-8",
                ..
            }
        ),
        "{err:?}"
    );
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn names_round_trip() {
    let name = NsName::new("blue").unwrap();
    assert_eq!(name.as_str(), "blue");
    assert_eq!(name.to_string(), "blue");
    assert_eq!(format!("{name:?}"), "\"blue\"");
    assert_eq!(String::from(name.clone()), "blue");
    assert_eq!(name.clone().into_string(), "blue");
    let s: &str = name.as_ref();
    let p: &std::path::Path = name.as_ref();
    assert_eq!((s, p), ("blue", std::path::Path::new("blue")));
    assert!(NsName::new("a").unwrap() < NsName::new("b").unwrap());
}

/// Names iproute2 accepts that look odd: each works end to end, and `ip`
/// sees the same namespace under the same name.
#[tokio::test]
async fn odd_but_valid_names_work_here_and_with_ip() {
    require_root();
    let dir = RunDir::default();
    let pid = std::process::id();
    let long = format!("{pid}-{}", "l".repeat(NAME_MAX - 1 - pid.to_string().len()));
    let cases = [
        format!("-dash-{pid}"),
        format!("sp ace {pid}"),
        format!("ünï-{pid}"),
        format!("...{pid}"),
        format!(".hidden-{pid}"),
        long,
    ];
    for raw in &cases {
        let name = NsName::new(raw.as_str()).unwrap();
        assert!(raw.len() <= NAME_MAX);
        let _g = NameGuard::new(&dir, &name);
        let ns = dir.create(&name, OpenMode::CreateExclusive).await.unwrap();
        assert!(
            dir.list().unwrap().iter().any(|e| e.name == name),
            "{raw:?} not listed"
        );
        assert_eq!(dir.open(&name).unwrap(), ns);
        assert_eq!(dir.identify(&ns).unwrap(), vec![name.clone()]);
        let links = ip(&["-n", raw, "-o", "link"]);
        assert!(links.contains("lo"), "{raw:?}: {links}");
        dir.remove(&name).await.unwrap();
        assert!(!dir.entry(&name).exists());
    }
}
