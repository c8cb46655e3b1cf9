//! The check tool as a vendor and an operator use it, through the `nsdb` binary: the layout's
//! schema and sample, `nsdb check` on a folder with its error list and exit status, and the keys
//! from the node's key information request through the hub's signature to sealed files.

use std::path::Path;
use std::process::{Command, Output};

const NSDB: &str = env!("CARGO_BIN_EXE_nsdb");

fn nsdb(args: &[&str]) -> Output {
    Command::new(NSDB)
        .args(args)
        .env("NSDB_PASSWORD", "a-long-password")
        .output()
        .expect("nsdb runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn node_config(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("db.key");
    std::fs::write(&key, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        r#"name = "試験県ノード"
role = "hospital"
listen = "127.0.0.1:0"
data_dir = "data"
key_file = "db.key"

[institution]
code = "1399000036"
name = "試験病院"
"#,
    )
    .unwrap();
    path
}

#[test]
fn the_schema_and_sample_of_a_form_come_from_the_binary() {
    let schema = ok(&nsdb(&["xml", "schema", "rinko-002"]));
    assert!(schema.contains("<xs:schema"), "{schema}");
    let sample = ok(&nsdb(&["xml", "sample", "rinko-002"]));
    assert!(sample.contains("<Sheet form=\"rinko-002\""), "{sample}");
    let forms = ok(&nsdb(&["xml", "forms"]));
    assert!(forms.contains("rinko-002\t"), "{forms}");
    let unknown = nsdb(&["xml", "schema", "rinko-999"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nsdb xml forms"));
}

/// A hub, a hospital node enrolled with it, the node's key information signed by the hub, and
/// a doctor with a check-tool key registered on the node.
struct Keys {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    keyinfo: std::path::PathBuf,
    hub_key: String,
    user_key: std::path::PathBuf,
}

impl Keys {
    fn d(&self) -> &Path {
        self.dir.path()
    }

    /// `nsdb check` with the keys, sealing into `out`, plus `extra` arguments.
    fn seal(&self, paths: &[&Path], out: &Path, extra: &[&str]) -> Output {
        let (csv, json) = (self.d().join("seal.csv"), self.d().join("seal.json"));
        let mut args: Vec<&str> = vec!["check"];
        args.extend(paths.iter().map(|p| p.to_str().unwrap()));
        args.extend([
            "--quiet",
            "--csv",
            csv.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--key-info",
            self.keyinfo.to_str().unwrap(),
            "--hub-key",
            &self.hub_key,
            "--user-key",
            self.user_key.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        args.extend(extra);
        nsdb(&args)
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.d().join("seal.json")).unwrap()).unwrap()
    }
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let config = node_config(&d);
    let config = config.to_str().unwrap();

    // The hub, and the node enrolled with it.
    let hub = d.join("hub");
    let hub_out = ok(&nsdb(&[
        "provision",
        "hub-init",
        "--data",
        hub.to_str().unwrap(),
    ]));
    let hub_key = hub_out
        .lines()
        .find_map(|l| l.strip_prefix("hub public key: "))
        .unwrap()
        .trim()
        .to_string();
    // The node's data directory exists (as `nsdb init` makes it): node-key never creates one.
    nsdb_provisioning::create_private_dir(&d.join("data")).unwrap();
    let node_key = ok(&nsdb(&[
        "provision",
        "node-key",
        "--data",
        d.join("data").to_str().unwrap(),
    ]));
    ok(&nsdb(&[
        "provision",
        "issue",
        "--data",
        hub.to_str().unwrap(),
        "--node-key",
        node_key.trim(),
        "--role",
        "hospital",
        "--jurisdiction",
        "1399000036",
        "--name",
        "試験県ノード",
        "--hub-address",
        "127.0.0.1:7443",
        "--out",
        d.join("enrollment.toml").to_str().unwrap(),
    ]));

    // Key information: requested on the node, signed on the hub.
    let request = d.join("node.request");
    let keyinfo = d.join("node.keyinfo");
    ok(&nsdb(&[
        "key-info",
        "request",
        "--config",
        config,
        "--expires",
        "2099-12-31",
        "--out",
        request.to_str().unwrap(),
    ]));
    let signed = ok(&nsdb(&[
        "key-info",
        "sign",
        "--data",
        hub.to_str().unwrap(),
        "--request",
        request.to_str().unwrap(),
        "--out",
        keyinfo.to_str().unwrap(),
    ]));
    assert!(signed.contains(&hub_key), "{signed}");

    // A doctor with a check-tool key registered on the node (set up first by nsdb init).
    ok(&nsdb(&["init", "--config", config]));
    ok(&nsdb(&[
        "user",
        "add",
        "--config",
        config,
        "--login",
        "suzuki",
        "--name",
        "鈴木 一郎",
        "--kind",
        "nanbyo_doctor",
    ]));
    let user_key = d.join("suzuki.key");
    ok(&nsdb(&[
        "user",
        "key",
        "--config",
        config,
        "--login",
        "suzuki",
        "--out",
        user_key.to_str().unwrap(),
    ]));

    Keys {
        config: std::path::PathBuf::from(config),
        dir,
        keyinfo,
        hub_key,
        user_key,
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

#[test]
fn a_folder_is_checked_the_errors_listed_for_excel_and_passing_sheets_sealed() {
    let k = keys();
    let d = k.d();
    let (keyinfo, hub_key, user_key) = (&k.keyinfo, &k.hub_key, &k.user_key);
    // A folder with a passing file and a file missing the patient's name.
    let exports = d.join("exports");
    std::fs::create_dir_all(exports.join("march")).unwrap();
    let sample = ok(&nsdb(&["xml", "sample", "rinko-002"]));
    std::fs::write(exports.join("20230101.xml"), &sample).unwrap();
    let partial: String = sample
        .lines()
        .filter(|l| !l.contains("<name>見本 太郎</name>"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(partial.len(), sample.len(), "the sample names its patient");
    std::fs::write(exports.join("march").join("partial.xml"), partial).unwrap();

    let (csv, json, sealed) = (
        d.join("errors.csv"),
        d.join("errors.json"),
        d.join("sealed"),
    );
    let out = nsdb(&[
        "check",
        exports.to_str().unwrap(),
        "--quiet",
        "--today",
        "2026-04-01",
        "--csv",
        csv.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--key-info",
        keyinfo.to_str().unwrap(),
        "--hub-key",
        hub_key,
        "--user-key",
        user_key.to_str().unwrap(),
        "--out",
        sealed.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors give status 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(
        csv.starts_with(
            "\u{feff}ファイル,ファイル内の順番,参照番号,患者氏名,項目ID,項目名,メッセージ\r\n"
        ),
        "{csv}"
    );
    let partial_line = csv
        .lines()
        .find(|l| l.contains("partial.xml"))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(partial_line.contains("patient.name"), "{partial_line}");
    assert!(
        !csv.contains("20230101.xml"),
        "the passing file has no error: {csv}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["files"], 2);
    assert_eq!(summary["passed"], 1);
    assert_eq!(summary["sealed"], 1);
    let files = files_in(&sealed);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("20230101_1_") && files[0].ends_with(".sealed"),
        "{files:?}"
    );

    // Only the passing file: status 0.
    let out = nsdb(&[
        "check",
        exports.join("20230101.xml").to_str().unwrap(),
        "--quiet",
        "--today",
        "2026-04-01",
        "--csv",
        d.join("ok.csv").to_str().unwrap(),
        "--json",
        d.join("ok.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));

    // Key information from another hub than the one trusted: status 2, with the reason.
    let out = nsdb(&[
        "check",
        exports.to_str().unwrap(),
        "--quiet",
        "--csv",
        d.join("x.csv").to_str().unwrap(),
        "--json",
        d.join("x.json").to_str().unwrap(),
        "--key-info",
        keyinfo.to_str().unwrap(),
        "--hub-key",
        "5866666666666666666666666666666666666666666666666666666666666666",
        "--user-key",
        user_key.to_str().unwrap(),
        "--out",
        sealed.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ハブの鍵"));
}

/// Two files of the same name in two folders give two sealed files, both on disk; running the
/// tool again overwrites nothing and says so; a partial sheet is sealed only with --partial;
/// a folder that links back to itself is walked once.
#[test]
fn sealed_files_never_collide_nor_overwrite_and_partial_sheets_are_sealed_on_request() {
    let k = keys();
    let d = k.d();
    let exports = d.join("exports");
    for (folder, name) in [("a", "見本 一郎"), ("b", "見本 二郎")] {
        std::fs::create_dir_all(exports.join(folder)).unwrap();
        let sample = ok(&nsdb(&["xml", "sample", "rinko-002"])).replace("見本 太郎", name);
        std::fs::write(exports.join(folder).join("x.xml"), sample).unwrap();
    }
    std::os::unix::fs::symlink(&exports, exports.join("a").join("loop")).unwrap();
    let sealed = d.join("sealed");
    let out = k.seal(&[&exports], &sealed, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let first = files_in(&sealed);
    assert_eq!(first.len(), 2, "one file per sheet: {first:?}");
    assert!(first.iter().all(|f| f.starts_with("x_1_")), "{first:?}");
    assert_eq!(k.summary()["sealed"], 2);
    let before: Vec<Vec<u8>> = first
        .iter()
        .map(|f| std::fs::read(sealed.join(f)).unwrap())
        .collect();

    let out = k.seal(&[&exports], &sealed, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(files_in(&sealed), first, "the same sheets keep their names");
    let after: Vec<Vec<u8>> = first
        .iter()
        .map(|f| std::fs::read(sealed.join(f)).unwrap())
        .collect();
    assert_eq!(before, after, "nothing was overwritten");
    let summary = k.summary();
    assert_eq!(
        (summary["sealed"].clone(), summary["already_sealed"].clone()),
        (0.into(), 2.into())
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("書き直していません"));

    // A damaged file under a sealed file's name is replaced, not counted as sealed.
    std::fs::write(sealed.join(&first[0]), "garbage").unwrap();
    let out = k.seal(&[&exports], &sealed, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary = k.summary();
    assert_eq!(
        (summary["sealed"].clone(), summary["already_sealed"].clone()),
        (1.into(), 1.into())
    );
    assert_ne!(std::fs::read(sealed.join(&first[0])).unwrap(), b"garbage");

    // A sealed file whose body was changed is replaced, not kept as already sealed.
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sealed.join(&first[1])).unwrap()).unwrap();
    let body = file["body"].as_str().unwrap().to_string();
    let flipped = if body.starts_with('A') { "B" } else { "A" };
    file["body"] = format!("{flipped}{}", &body[1..]).into();
    std::fs::write(sealed.join(&first[1]), serde_json::to_vec(&file).unwrap()).unwrap();
    let out = k.seal(&[&exports], &sealed, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        k.summary()["sealed"],
        1,
        "the changed file was written again"
    );

    // The error lists never overwrite an input.
    let out = nsdb(&[
        "check",
        exports.to_str().unwrap(),
        "--quiet",
        "--csv",
        exports.join("a").join("x.xml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        std::fs::read_to_string(exports.join("a").join("x.xml"))
            .unwrap()
            .contains("<Sheets")
    );
    // … nor through a hard link to it.
    std::fs::hard_link(exports.join("a").join("x.xml"), d.join("linked.csv")).unwrap();
    let out = nsdb(&[
        "check",
        exports.to_str().unwrap(),
        "--quiet",
        "--csv",
        d.join("linked.csv").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        std::fs::read_to_string(exports.join("a").join("x.xml"))
            .unwrap()
            .contains("<Sheets")
    );

    // A file without any sheet is an error, not a silent pass.
    let empty = d.join("empty-sheets");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        empty.join("none.xml"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Sheets layout=\"1\"></Sheets>\n",
    )
    .unwrap();
    let out = k.seal(&[&empty], &d.join("sealed-empty"), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // A sheet without the birth date: listed, sealed only with --partial; one without the
    // patient's name is not sealed even then (a draft must say whose it is).
    let partial_dir = d.join("partial");
    std::fs::create_dir_all(&partial_dir).unwrap();
    let sample = ok(&nsdb(&["xml", "sample", "rinko-002"]));
    let without = |tag: &str| -> String {
        sample
            .lines()
            .filter(|l| !l.contains(tag))
            .collect::<Vec<_>>()
            .join("\n")
    };
    std::fs::write(partial_dir.join("p.xml"), without("<birth_date>")).unwrap();
    std::fs::write(partial_dir.join("q.xml"), without("<name>見本 太郎</name>")).unwrap();
    let out_partial = d.join("sealed-partial");
    let out = k.seal(&[&partial_dir], &out_partial, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(files_in(&out_partial).is_empty());
    let out = k.seal(&[&partial_dir], &out_partial, &["--partial"]);
    assert_eq!(out.status.code(), Some(1), "its errors are still listed");
    assert_eq!(files_in(&out_partial).len(), 1);
    assert_eq!(k.summary()["sealed_partial"], 1);
}

/// What the tool cannot use is refused with status 2 and a message naming it, at once: no XML
/// file at all, a FIFO (never read, so never waited on).
#[test]
fn nothing_to_check_and_fifos_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("e.csv");
    let json = d.join("e.json");
    let run = |path: &Path| {
        nsdb(&[
            "check",
            path.to_str().unwrap(),
            "--quiet",
            "--csv",
            csv.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
    };
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(&empty);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("XML ファイル（*.xml）が見つかりません"),
        "{out:?}"
    );

    let fifo = d.join("pipe.xml");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let out = run(&fifo);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("通常のファイルでもフォルダでもありません"),
        "{out:?}"
    );
    // The two lists at one new file, named two ways: refused before anything is written.
    let sample = ok(&nsdb(&["xml", "sample", "rinko-002"]));
    std::fs::write(empty.join("ok.xml"), sample).unwrap();
    let out = nsdb(&[
        "check",
        empty.join("ok.xml").to_str().unwrap(),
        "--quiet",
        "--csv",
        d.join("n1.csv").to_str().unwrap(),
        "--json",
        d.join("empty").join("..").join("n1.csv").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!d.join("n1.csv").exists());
    std::fs::remove_file(empty.join("ok.xml")).unwrap();

    // In a folder, a FIFO named *.xml is not an XML file.
    let out = run(d);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // Nor over a file the check reads (the user's key, the key information), nor onto one
    // file through a link that leads nowhere yet.
    let keys = d.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(
        empty.join("ok.xml"),
        ok(&nsdb(&["xml", "sample", "rinko-002"])),
    )
    .unwrap();
    for name in ["doctor.key", "hospital.keyinfo"] {
        std::fs::write(keys.join(name), "秘密").unwrap();
    }
    for (csv_at, json_at) in [
        (keys.join("doctor.key"), d.join("j.json")),
        (d.join("c.csv"), keys.join("hospital.keyinfo")),
    ] {
        let out = nsdb(&[
            "check",
            empty.join("ok.xml").to_str().unwrap(),
            "--quiet",
            "--csv",
            csv_at.to_str().unwrap(),
            "--json",
            json_at.to_str().unwrap(),
            "--key-info",
            keys.join("hospital.keyinfo").to_str().unwrap(),
            "--hub-key",
            &"0".repeat(64),
            "--user-key",
            keys.join("doctor.key").to_str().unwrap(),
            "--out",
            d.join("sealed").to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("で読み込むファイルです"),
            "{out:?}"
        );
    }
    for name in ["doctor.key", "hospital.keyinfo"] {
        assert_eq!(std::fs::read_to_string(keys.join(name)).unwrap(), "秘密");
    }
    std::os::unix::fs::symlink("x.csv", d.join("y.json")).unwrap();
    let out = nsdb(&[
        "check",
        empty.join("ok.xml").to_str().unwrap(),
        "--quiet",
        "--csv",
        d.join("x.csv").to_str().unwrap(),
        "--json",
        d.join("y.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!d.join("x.csv").exists());
    std::fs::remove_file(empty.join("ok.xml")).unwrap();

    // A link named *.xml that leads nowhere is not skipped in silence: its line says so.
    let links = d.join("links");
    std::fs::create_dir_all(&links).unwrap();
    std::fs::write(
        links.join("ok.xml"),
        ok(&nsdb(&["xml", "sample", "rinko-002"])),
    )
    .unwrap();
    std::os::unix::fs::symlink(d.join("moved-away.xml"), links.join("gone.xml")).unwrap();
    let out = run(&links);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let list = std::fs::read_to_string(&csv).unwrap();
    let line = list
        .lines()
        .find(|l| l.contains("gone.xml"))
        .unwrap_or_else(|| panic!("no line for the dangling link: {list}"));
    assert!(
        line.contains("ファイルを読めません: 見つかりません"),
        "{line}"
    );

    // Nor, when the command line cannot be parsed, over a file the check would read, nor over
    // anything that is not an earlier error list (a sealed file, a document).
    let out = nsdb(&[
        "check",
        links.to_str().unwrap(),
        "--csv",
        keys.join("doctor.key").to_str().unwrap(),
        "--user-key",
        keys.join("doctor.key").to_str().unwrap(),
        "--no-such-option",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    std::fs::write(d.join("kept.sealed"), "封").unwrap();
    let out = nsdb(&[
        "check",
        links.to_str().unwrap(),
        "--json",
        d.join("kept.sealed").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("エラー一覧ではないファイル"),
        "{out:?}"
    );
    let out = nsdb(&[
        "check",
        "--json",
        d.join("kept.sealed").to_str().unwrap(),
        "--no-such-option",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(keys.join("doctor.key")).unwrap(),
        "秘密"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("kept.sealed")).unwrap(),
        "封"
    );

    // Arguments that cannot be parsed: status 2, and the lists they name say the check did
    // not run, so the lists of the run before are not taken for this one's.
    let out = nsdb(&[
        "check",
        links.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        &format!("--json={}", json.display()),
        "--no-such-option",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["ran"], false, "{summary}");
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("--no-such-option"),
        "{summary}"
    );
    let list = std::fs::read_to_string(&csv).unwrap();
    assert!(
        list.contains("チェックを実行できませんでした") && !list.contains("gone.xml"),
        "{list}"
    );
}

/// The key steps refuse what would only fail later: a key file for a user who does not exist
/// is not left behind, and key information cannot be issued already expired.
#[test]
fn key_steps_refuse_unknown_users_and_past_expiry_without_leaving_files() {
    let k = keys();
    let config = k.config.to_str().unwrap();
    let orphan = k.d().join("nobody.key");
    let out = nsdb(&[
        "user",
        "key",
        "--config",
        config,
        "--login",
        "nobody",
        "--out",
        orphan.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nobody"),
        "{out:?}"
    );
    assert!(!orphan.exists(), "no key file for an unknown user");

    let request = k.d().join("past.request");
    let out = nsdb(&[
        "key-info",
        "request",
        "--config",
        config,
        "--expires",
        "2001-03-31",
        "--out",
        request.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("過ぎた日付"),
        "{out:?}"
    );
    assert!(!request.exists());
}
