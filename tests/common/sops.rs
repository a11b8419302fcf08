//! The real sops CLI for tests (`.tools/bin/sops`, built by `scripts/build-go-tool.sh sops`): files
//! encrypted by it with an age key the test makes (the `age` crate) or a PGP key it makes (gpg
//! in a private GNUPGHOME), and driftless's decryption compared with `sops decrypt`.

use std::path::{Path, PathBuf};
use std::process::Command;

use age::secrecy::ExposeSecret;
use driftless::sops::{self, Format, Keys};

/// A private sops environment: a temp dir for HOME and files, an age key, and (made on
/// demand) a PGP key in its own GNUPGHOME.
pub struct Env {
    pub sops: PathBuf,
    pub dir: tempfile::TempDir,
    pub age_secret: String,
    pub age_recipient: String,
    pub pgp: Option<(String, String)>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.pgp.is_some() {
            let _ = Command::new("gpgconf").args(["--kill", "gpg-agent"]).env("GNUPGHOME", self.gnupg()).status();
        }
    }
}

impl Env {
    pub fn new() -> Option<Env> {
        let sops = super::tools_dir().join("bin/sops");
        if !sops.exists() {
            return super::missing(&format!("sops ({}; scripts/setup-tools.sh builds it)", sops.display()));
        }
        let identity = age::x25519::Identity::generate();
        // A short path: gpg-agent's socket lives under GNUPGHOME (unix sockets allow 108 bytes).
        let dir = tempfile::Builder::new().prefix("sops").tempdir().unwrap();
        let age_secret = identity.to_string().expose_secret().to_string();
        std::fs::write(dir.path().join("age.agekey"), format!("# made by the test\n{age_secret}\n")).unwrap();
        Some(Env { sops, dir, age_secret, age_recipient: identity.to_public().to_string(), pgp: None })
    }

    pub fn gnupg(&self) -> PathBuf {
        self.dir.path().join("g")
    }

    /// A PGP key without a passphrase: (fingerprint, armored secret key).
    pub fn pgp(&mut self) -> (String, String) {
        if let Some(p) = &self.pgp {
            return p.clone();
        }
        let home = self.gnupg();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let gpg = |args: &[&str]| {
            let out = Command::new("gpg")
                .args(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""])
                .args(args)
                .env("GNUPGHOME", &home)
                .output()
                .expect("gpg (Debian: gnupg)");
            assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        gpg(&["--quick-gen-key", "driftless test <test@example.invalid>", "rsa3072", "cert,encr", "never"]);
        let listing = gpg(&["--with-colons", "--list-secret-keys"]);
        let fingerprint = listing.lines().find_map(|l| l.strip_prefix("fpr:")).map(|l| l.trim_matches(':').to_string()).unwrap();
        let armored = gpg(&["--armor", "--export-secret-keys", &fingerprint]);
        self.pgp = Some((fingerprint, armored));
        self.pgp.clone().unwrap()
    }

    pub fn keys(&self) -> Keys {
        let mut k = Keys::default();
        k.add_age("age.agekey", &self.age_secret).unwrap();
        if let Some((_, armored)) = &self.pgp {
            k.add_pgp("pgp.asc", armored).unwrap();
        }
        k
    }

    pub fn sops(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new(&self.sops)
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("GNUPGHOME", self.gnupg())
            .env("SOPS_AGE_KEY_FILE", self.dir.path().join("age.agekey"))
            .output()
            .unwrap();
        assert!(out.status.success(), "sops {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// `name` with `content`, encrypted by sops with `recipient` flags and `options`.
    pub fn encrypt(&self, name: &str, content: &[u8], recipient: &[&str], options: &[&str]) -> Vec<u8> {
        std::fs::write(self.dir.path().join(name), content).unwrap();
        // sops's top-level `--encrypt` takes every rule (the `encrypt` command lacks the
        // comment rules and `--mac-only-encrypted`).
        let mut args = vec!["--encrypt"];
        args.extend(recipient);
        args.extend(options);
        args.push(name);
        let encrypted = self.sops(&args);
        std::fs::write(self.dir.path().join(format!("enc-{name}")), &encrypted).unwrap();
        encrypted
    }

    pub fn age(&self) -> [&str; 2] {
        ["--age", &self.age_recipient]
    }

    /// What `sops decrypt` prints for an encrypted file of the env.
    pub fn sops_decrypt(&self, name: &str) -> Vec<u8> {
        self.sops(&["decrypt", &format!("enc-{name}")])
    }

    /// Encrypts, decrypts both ways, and compares.
    pub fn differential(&self, name: &str, content: &str, recipient: &[&str], options: &[&str]) -> Vec<u8> {
        let encrypted = self.encrypt(name, content.as_bytes(), recipient, options);
        let theirs = self.sops_decrypt(name);
        let format = Format::from_path(Path::new(name));
        assert_eq!(Format::of_encrypted(Path::new(name), &encrypted), Some(format), "{name} is recognised as encrypted");
        let ours = sops::decrypt(name, format, &encrypted, &self.keys()).unwrap_or_else(|e| panic!("{name} {options:?}: {e}"));
        if format == Format::Yaml {
            let parse = |b: &[u8]| -> Vec<serde_yaml::Value> {
                serde_yaml::Deserializer::from_slice(b).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
            };
            assert_eq!(parse(&ours.bytes), parse(&theirs), "{name} {options:?}:\n{}", String::from_utf8_lossy(&ours.bytes));
        } else {
            assert_eq!(String::from_utf8_lossy(&ours.bytes), String::from_utf8_lossy(&theirs), "{name} {options:?}");
            assert_eq!(ours.bytes, theirs, "{name} {options:?}");
        }
        encrypted
    }
}
