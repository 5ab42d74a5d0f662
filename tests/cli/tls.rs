//! billrun reaches PostgreSQL over TLS as `psql` does with the same URL: `sslmode` as libpq
//! documents it, against a server whose certificate is self-signed and of X.509 version 1
//! (what Citus makes). `scripts/test` starts the PostgreSQL half's server with TLS on and such
//! a certificate, and names it in `BILLRUN_TEST_PG_CA`; its Citus half names the certificate
//! the coordinator's `citus` extension made. On SQLite there is nothing to reach.

use crate::harness::*;
use std::process::Command;

/// `url` with `params` added to its query.
fn with(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// A self-signed version 1 certificate for `cn`, made by `openssl`, in `dir`.
fn other_certificate(dir: &std::path::Path, cn: &str) -> String {
    let (key, csr, crt) = (dir.join("other.key"), dir.join("other.csr"), dir.join("other.crt"));
    let ok = |c: &mut Command| assert!(c.status().expect("run openssl").success());
    ok(Command::new("openssl")
        .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .args(["-subj", &format!("/CN={cn}"), "-out"])
        .arg(&csr)
        .stderr(std::process::Stdio::null()));
    ok(Command::new("openssl")
        .args(["x509", "-req", "-in"])
        .arg(&csr)
        .arg("-signkey")
        .arg(&key)
        .args(["-days", "30", "-out"])
        .arg(&crt)
        .stderr(std::process::Stdio::null()));
    crt.display().to_string()
}

#[test]
fn sslmode_behaves_as_libpq_documents_it_with_a_self_signed_version_1_certificate() {
    let env = Env::new();
    if !env.is_postgres() {
        return;
    }
    let ca = std::env::var("BILLRUN_TEST_PG_CA").expect(
        "BILLRUN_TEST_PG_CA: scripts/test starts the PostgreSQL half's server with TLS and names its certificate",
    );
    // The server's certificate is what this test is about: read by OpenSSL's own tool.
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", &ca])
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Version: 1 (0x0)"), "a version 1 certificate: {text}");
    // scripts/test's plain server has a certificate for localhost; a Citus coordinator keeps
    // the one its extension made, named citus-auto-ssl, which no host name matches.
    let for_localhost = text.contains("Subject: CN = localhost");
    assert!(for_localhost || text.contains("Subject: CN = citus-auto-ssl"), "{text}");
    env.ok(&["migrate"]);

    let list = |url: &str| {
        env.command_at(url, &["accounts", "list"])
            .output()
            .expect("run billrun")
    };
    let connects = |url: &str| {
        let out = list(url);
        assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let refused = |url: &str, why: &str| {
        let out = list(url);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{url}: a configuration to fix, not to retry"
        );
        assert!(err.contains(why), "{url}: {err}");
        assert!(!err.contains("not-a-secret"), "the password is never shown: {err}");
    };
    let db = &env.database;
    let on_localhost = db.replace("@127.0.0.1:", "@localhost:");
    let ca_param = format!("sslrootcert={ca}");

    // prefer (the default) and require take the certificate without checking it.
    connects(db);
    connects(&with(db, "sslmode=prefer"));
    connects(&with(db, "sslmode=require"));
    connects(&with(db, "sslmode=disable"));
    // verify-ca checks it against the root given, not the host name; verify-full checks both.
    if for_localhost {
        connects(&with(db, &format!("sslmode=verify-ca&{ca_param}")));
        connects(&with(&on_localhost, &format!("sslmode=verify-full&{ca_param}")));
    } else {
        // Citus' own certificate is for encryption only: valid from the instant it was made
        // to that same instant, and named for no host. The modes that verify refuse it, as
        // libpq's do.
        refused(&with(db, &format!("sslmode=verify-ca&{ca_param}")), "certificate");
        refused(
            &with(&on_localhost, &format!("sslmode=verify-full&{ca_param}")),
            "certificate",
        );
    }
    refused(&with(db, &format!("sslmode=verify-full&{ca_param}")), "certificate");
    let other = other_certificate(env.dir.path(), "localhost");
    refused(
        &with(db, &format!("sslmode=verify-ca&sslrootcert={other}")),
        "certificate",
    );
    refused(
        &with(&on_localhost, &format!("sslmode=verify-full&sslrootcert={other}")),
        "certificate",
    );
    // A root certificate file that is not there: a configuration to fix, naming the file.
    let missing = env.dir.path().join("no-such-ca.pem");
    refused(
        &with(db, &format!("sslmode=verify-ca&sslrootcert={}", missing.display())),
        "no-such-ca.pem",
    );
}
