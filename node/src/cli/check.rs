//! `nsdb check`: the hospital-side check tool (チェックツール). It reads XML files in the
//! published layout in bulk, runs exactly the screen's checks (`nsdb_rules::check` in
//! `Mode::Complete`, with the same built-in forms or signed rule pack as the node), writes the
//! error list as CSV (UTF-8 with BOM, for Excel) and JSON, and, given the receiving node's key
//! information and the user's key, writes one sealed file per passing sheet
//! (docs/sealed-files.md).
//!
//! Also `nsdb key-info request|sign`: the node issues its key information and the hub signs it.
//!
//! The check tool must never touch a database or the network: it runs on a closed hospital
//! network with nothing but this binary.
//!
//! Exit status of `nsdb check`: 0 every sheet passed (and was sealed when asked); 1 some file
//! or sheet has errors (they are in the error list; passing sheets are still sealed); 2 the
//! check could not run (arguments, no XML file found, rule pack, key information, an output
//! that cannot be written).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use nsdb_provisioning::sealed::{self, KeyInfo, UserKey, VerifiedKeyInfo};
use nsdb_rules::check::Mode;
use nsdb_rules::{Catalogue, Date};
use serde::Serialize;

/// Arguments of `nsdb check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// XML files, or folders whose `*.xml` files (and those of their subfolders) are read.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Where to write the error list as CSV (UTF-8 with BOM: file, sheet, patient, item id,
    /// item label, message).
    #[arg(long, value_name = "FILE", default_value = "nsdb-check-errors.csv")]
    pub csv: PathBuf,
    /// Where to write the error list and a summary as JSON.
    #[arg(long, value_name = "FILE", default_value = "nsdb-check-errors.json")]
    pub json: PathBuf,
    /// A signed rule pack, as configured on the node (default: the forms built into nsdb).
    #[arg(long, value_name = "FILE")]
    pub pack: Option<PathBuf>,
    /// The ministry's public key (64 hexadecimal characters) the pack must be signed with.
    #[arg(long, value_name = "HEX")]
    pub ministry_key: Option<String>,
    /// "Today" for the sheets' date checks (YYYY-MM-DD); default: today in Japan. The key
    /// information's expiry is always checked against the real date.
    #[arg(long, value_name = "DATE")]
    pub today: Option<String>,
    /// The receiving node's key information (鍵情報), signed by the hub: seal passing sheets
    /// to that node. Needs --hub-key, --user-key and --out.
    #[arg(long, value_name = "FILE", requires_all = ["hub_key", "user_key", "out"])]
    pub key_info: Option<PathBuf>,
    /// The hub's public key (64 hexadecimal characters) the key information must be signed
    /// with.
    #[arg(long, value_name = "HEX")]
    pub hub_key: Option<String>,
    /// The user's signing key file (from `nsdb user key`), registered on the node.
    #[arg(long, value_name = "FILE")]
    pub user_key: Option<PathBuf>,
    /// The folder for the sealed files: one `NAME_N_HASH.sealed` per passing sheet N of
    /// `NAME.xml`, HASH naming the sheet's content; an existing file is never overwritten.
    #[arg(long, value_name = "DIR", requires = "key_info")]
    pub out: Option<PathBuf>,
    /// Also seal sheets that read correctly but whose checks found items missing or wrong
    /// (部分取込): the node imports them as drafts (一時保存) to finish on screen. Their messages
    /// are still in the error list.
    #[arg(long, requires = "key_info")]
    pub partial: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// One line of the error list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorLine {
    /// The file, as given or found.
    pub file: String,
    /// The sheet's position in the file (ファイル内の順番), from 1 (0: the file as a whole).
    pub sheet: usize,
    /// The sheet's `ref` attribute, if any.
    pub reference: String,
    /// 患者氏名, when the sheet has one.
    pub patient: String,
    /// The item id, when the message concerns one.
    pub item: String,
    /// The item's label on the form.
    pub label: String,
    pub message: String,
}

impl ErrorLine {
    /// A line about a file as a whole (sheet 0, no item): it cannot be read, written, or the
    /// check could not run at all (`file` empty).
    pub fn whole_file(file: impl Into<String>, message: impl Into<String>) -> ErrorLine {
        ErrorLine {
            file: file.into(),
            sheet: 0,
            reference: String::new(),
            patient: String::new(),
            item: String::new(),
            label: String::new(),
            message: message.into(),
        }
    }
}

/// What checking (and sealing) one file gave.
#[derive(Debug, Default)]
pub struct FileOutcome {
    pub sheets: usize,
    pub passed: usize,
    pub errors: Vec<ErrorLine>,
    /// Sealed files: (file name, bytes).
    pub sealed: Vec<(String, Vec<u8>)>,
    /// Of `sealed`, how many hold a sheet whose checks found errors (sealed with `partial`).
    pub sealed_partial: usize,
}

impl FileOutcome {
    /// Sheets that did not pass.
    pub fn failed_sheets(&self) -> usize {
        self.sheets - self.passed
    }
}

/// What sealing needs: where to, by whom, and the versions written into each file.
pub struct Sealer {
    pub to: VerifiedKeyInfo,
    pub by: UserKey,
    pub rule_pack_version: String,
    /// Also seal sheets whose checks found errors (but whose layout read correctly).
    pub partial: bool,
}

/// Reads, checks and (with `sealer`) seals one file's bytes. `name` names the file in the
/// error list and in the sealed files' names ([`sealed_name`]). Never fails: a file that cannot
/// be read is one error line.
pub fn check_file(
    cat: &Catalogue,
    name: &str,
    bytes: &[u8],
    today: Date,
    sealer: Option<&Sealer>,
) -> FileOutcome {
    let mut out = FileOutcome::default();
    let line =
        |sheet: usize, reference: &str, patient: &str, item: &str, label: &str, m: String| {
            ErrorLine {
                file: name.to_string(),
                sheet,
                reference: reference.to_string(),
                patient: patient.to_string(),
                item: item.to_string(),
                label: label.to_string(),
                message: m,
            }
        };
    let sheets = match nsdb_rules::xml::read(cat, bytes) {
        Ok(s) if s.is_empty() => {
            out.errors.push(line(
                0,
                "",
                "",
                "",
                "",
                "様式（<Sheet>）が1つもありません。".into(),
            ));
            return out;
        }
        Ok(s) => s,
        Err(e) => {
            out.errors.push(line(0, "", "", "", "", e.to_string()));
            return out;
        }
    };
    let stem = Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "sheet".into());
    for s in &sheets {
        out.sheets += 1;
        let reference = s.reference.clone().unwrap_or_default();
        let patient = s.values.get("patient.name").cloned().unwrap_or_default();
        let form = cat.form(&s.form);
        let label_of = |item: &str| {
            form.and_then(|f| f.item(item))
                .map(|i| i.label.clone())
                .unwrap_or_default()
        };
        let before = out.errors.len();
        let layout_ok = s.errors.is_empty();
        for e in &s.errors {
            let item = e.item.clone().unwrap_or_default();
            out.errors.push(line(
                s.index,
                &reference,
                &patient,
                &item,
                &label_of(&item),
                e.to_string(),
            ));
        }
        let Some(form) = form else {
            continue;
        };
        for m in nsdb_rules::check(form, &s.values, Mode::Complete, today) {
            let item = m.items.first().cloned().unwrap_or_default();
            out.errors.push(line(
                s.index,
                &reference,
                &patient,
                &item,
                &label_of(&item),
                m.text,
            ));
        }
        let passed = out.errors.len() == before;
        if passed {
            out.passed += 1;
        }
        let Some(sealer) = sealer else {
            continue;
        };
        if !(passed || sealer.partial && layout_ok) {
            continue;
        }
        if !passed && nsdb_rules::value::is_blank(&patient) {
            out.errors.push(line(
                s.index,
                &reference,
                &patient,
                "patient.name",
                &label_of("patient.name"),
                "部分取込でも患者氏名は必要です（誰の様式か分からない下書きは作りません）。".into(),
            ));
            continue;
        }
        let sealed = nsdb_rules::xml::write(&[nsdb_rules::xml::SheetOut {
            form,
            reference: s.reference.as_deref(),
            values: &s.values,
        }])
        .map_err(|e| e.to_string())
        .and_then(|xml| {
            sealed::seal(
                xml.as_bytes(),
                &sealer.to,
                &sealer.by,
                crate::imports::TOOL_VERSION,
                &sealer.rule_pack_version,
            )
            .map_err(|e| e.to_string())
        });
        match sealed {
            Ok(bytes) => {
                let name = sealed_name(
                    &stem,
                    s.index,
                    &crate::imports::sheet_digest(&form.id, &s.values),
                    sealer,
                );
                out.sealed.push((name, bytes));
                if !passed {
                    out.sealed_partial += 1;
                }
            }
            Err(m) => {
                if passed {
                    out.passed -= 1;
                }
                out.errors
                    .push(line(s.index, &reference, &patient, "", "", m));
            }
        }
    }
    out
}

/// Characters of the XML file's stem kept in a sealed file's name, so that the name stays well
/// under the 255 bytes file systems allow.
const STEM_CHARS: usize = 40;

/// The name of a sealed file: `STEM_N_HASH.sealed` for sheet N of `STEM.xml` (the stem cut to
/// [`STEM_CHARS`] characters), HASH the first 12 hexadecimal digits of SHA-256 over the sheet's
/// [`crate::imports::sheet_digest`] and what it was sealed with: the recipient, the key information's expiry,
/// the rule pack and the signer. Two different sheets never share a name; the same sheet sealed
/// again the same way has the same name; sealed for another node, with newer key information,
/// another rule pack or by another user, it has another.
pub fn sealed_name(stem: &str, index: usize, digest: &str, sealer: &Sealer) -> String {
    use sha2::{Digest, Sha256};
    let info = sealer.to.info();
    let mut h = Sha256::new();
    for part in [
        digest,
        &info.recipient,
        &info.expires,
        &sealer.rule_pack_version,
        &hex::encode(sealer.by.public_key()),
    ] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    let hash = hex::encode(h.finalize());
    // A control character (a newline in a file name) would make a name no file chooser shows.
    let stem: String = stem
        .chars()
        .take(STEM_CHARS)
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    format!("{stem}_{index}_{}.sealed", &hash[..12])
}

/// The XML files named by `paths`: files as given, folders walked for `*.xml` (and `*.XML`),
/// sorted per folder. Symbolic links are followed, but a folder is walked once however many
/// links lead to it (a link loop ends there). Errors: a path that does not exist, or that is
/// not a regular file or a folder (a FIFO, a device), with its name; a folder that cannot be
/// read.
pub fn xml_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(
        dir: &Path,
        seen: &mut std::collections::HashSet<PathBuf>,
        out: &mut Vec<PathBuf>,
    ) -> anyhow::Result<()> {
        let real = std::fs::canonicalize(dir)
            .with_context(|| format!("フォルダ {} を読めません", dir.display()))?;
        if !seen.insert(real) {
            return Ok(());
        }
        let mut found = Vec::new();
        let mut dirs = Vec::new();
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("フォルダ {} を読めません", dir.display()))?;
        for e in entries {
            let p = e
                .with_context(|| format!("フォルダ {} を読めません", dir.display()))?
                .path();
            let is_xml = p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml"));
            let Ok(meta) = std::fs::metadata(&p) else {
                // A link that leads nowhere but is named as an XML file is listed, so that the
                // error list says it could not be read; any other entry gone meanwhile is not
                // a file to check.
                if is_xml && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_symlink()) {
                    found.push(p);
                }
                continue;
            };
            if meta.is_dir() {
                dirs.push(p);
            } else if meta.is_file() && is_xml {
                found.push(p);
            }
        }
        found.sort();
        dirs.sort();
        out.extend(found);
        for d in dirs {
            walk(&d, seen, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut seen, &mut out)?,
            Ok(m) if m.is_file() => out.push(p.clone()),
            Ok(_) => anyhow::bail!(
                "{} は通常のファイルでもフォルダでもありません（FIFO やデバイスは読みません）",
                p.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                anyhow::bail!("{} が見つかりません", p.display())
            }
            Err(e) => anyhow::bail!("{} を読めません: {}", p.display(), io_reason(&e)),
        }
    }
    Ok(out)
}

/// Why a file could not be read or written, in Japanese, for messages a clerk reads.
pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => "見つかりません".into(),
        PermissionDenied => "権限がありません".into(),
        AlreadyExists => "同じ名前のファイルがすでにあります".into(),
        StorageFull => "ディスクの空きがありません".into(),
        ReadOnlyFilesystem => "読み取り専用の場所です".into(),
        IsADirectory => "フォルダです".into(),
        // ELOOP: a loop of symbolic links (its ErrorKind is not stable yet).
        _ if e.raw_os_error() == Some(libc::ELOOP) => "リンクが循環しています".into(),
        _ => format!("入出力エラー（{e}）"),
    }
}

/// Runs `f` on every index below `n` on all cores; results in index order. Called from a task
/// of a multi-threaded tokio runtime (the node), it hands that task's thread over meanwhile
/// (`block_in_place`), so the node goes on answering other requests.
pub fn on_all_cores<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| on_threads(n, f)),
        _ => on_threads(n, f),
    }
}

/// [`on_all_cores`] on the calling thread and scoped worker threads.
fn on_threads<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(n.max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = f(i);
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// The error list as CSV: UTF-8 with a BOM and CRLF, which Excel opens as Japanese text.
/// The first line of the CSV error list (with its BOM): also how an existing file is known to
/// be an error list the tool may write over.
const CSV_HEADER: &str =
    "\u{feff}ファイル,ファイル内の順番,参照番号,患者氏名,項目ID,項目名,メッセージ\r\n";

pub fn errors_csv(errors: &[ErrorLine]) -> String {
    use crate::imports::csv_cell;
    let mut out = String::from(CSV_HEADER);
    for e in errors {
        let sheet = e.sheet.to_string();
        let cells = [
            e.file.as_str(),
            &sheet,
            &e.reference,
            &e.patient,
            &e.item,
            &e.label,
            &e.message,
        ];
        out.push_str(&cells.map(csv_cell).join(","));
        out.push_str("\r\n");
    }
    out
}

/// Parses a 64-hex-digit ed25519 public key.
pub fn public_key(hex_key: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_key.trim(), &mut k).map_err(|_| {
        anyhow::anyhow!(
            "{what} は公開鍵（16進数64文字）ではありません: 「{}」",
            hex_key.trim()
        )
    })?;
    // Not every 32 bytes are an ed25519 public key: refuse what no signature could match (a
    // secret key pasted by mistake usually decodes to no point; a weak key is refused too).
    match ed25519_dalek::VerifyingKey::from_bytes(&k) {
        Ok(v) if !v.is_weak() => {}
        _ => anyhow::bail!(
            "{what} は ed25519 の公開鍵として使えません（秘密鍵を貼り付けていないか確認してください）"
        ),
    }
    Ok(k)
}

/// The sealer `args` ask for, if any; `today` is the real date (the key information's expiry).
fn sealer(args: &CheckArgs, cat: &Catalogue, today: Date) -> anyhow::Result<Option<Sealer>> {
    let (Some(info), Some(hub), Some(user)) = (&args.key_info, &args.hub_key, &args.user_key)
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(info).map_err(|e| {
        anyhow::anyhow!("鍵情報 {} を読めません: {}", info.display(), io_reason(&e))
    })?;
    // The key information's expiry is a fact about the world, not about the sheets: it is
    // checked against the real date whatever --today says.
    let to = KeyInfo::parse(&text)?.verify(&public_key(hub, "--hub-key")?, &today.to_string())?;
    let by = UserKey::load(user).with_context(|| format!("利用者の鍵 {}", user.display()))?;
    Ok(Some(Sealer {
        to,
        by,
        rule_pack_version: cat.version().to_string(),
        partial: args.partial,
    }))
}

/// `nsdb check`: see the module comment for what it does and its exit status.
pub fn run(args: CheckArgs) -> ExitCode {
    // The inputs are found once: the error lists are checked against them before anything is
    // written, and the check reads them (or says why they could not be found).
    let inputs = xml_files(&args.paths);
    if let Err(e) = outputs_apart(&args, inputs.as_deref().unwrap_or_default()) {
        eprintln!("nsdb check: {e:#}");
        return ExitCode::from(2);
    }
    match check(&args, inputs) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("nsdb check: {message}");
            not_ran(&args.csv, &args.json, &message);
            ExitCode::from(2)
        }
    }
}

/// Writes error lists that say the check did not run (`"ran": false`), so that a list from an
/// earlier run is never taken for this one's. Best effort: the run already failed.
fn not_ran(csv: &Path, json: &Path, message: &str) {
    let line = ErrorLine::whole_file("", format!("チェックを実行できませんでした: {message}"));
    let summary = serde_json::json!({
        "tool_version": crate::imports::TOOL_VERSION,
        "ran": false,
        "error": message,
        "errors": [&line],
    });
    let _ = std::fs::write(csv, errors_csv(std::slice::from_ref(&line)));
    let _ = std::fs::write(
        json,
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    );
}

/// `nsdb check` with arguments that cannot be parsed (`args`: the whole command line, from
/// the program name): the error lists it names (`--csv`, `--json`, or their defaults) say the
/// check did not run, as for any other run that cannot start. Other commands: nothing.
pub fn arguments_refused(args: &[String], message: &str) {
    if args.get(1).map(String::as_str) != Some("check") {
        return;
    }
    // The value the command line gives an option (`--csv FILE` or `--csv=FILE`; the last one
    // counts, as for clap).
    let named = |flag: &str| -> Option<PathBuf> {
        let with_eq = format!("{flag}=");
        let mut found = None;
        let mut it = args[2..].iter();
        while let Some(a) = it.next() {
            if a == "--" {
                break;
            } else if a == flag {
                found = it.next().cloned();
            } else if let Some(v) = a.strip_prefix(&with_eq) {
                found = Some(v.to_string());
            }
        }
        found.map(PathBuf::from)
    };
    let csv = named("--csv").unwrap_or_else(|| PathBuf::from("nsdb-check-errors.csv"));
    let json = named("--json").unwrap_or_else(|| PathBuf::from("nsdb-check-errors.json"));
    // Never over an input, a file the check reads, each other, or anything but an earlier
    // error list: the same rules as a run that parsed.
    let apart = CheckArgs {
        paths: Vec::new(),
        csv: csv.clone(),
        json: json.clone(),
        pack: named("--pack"),
        ministry_key: None,
        today: None,
        key_info: named("--key-info"),
        hub_key: None,
        user_key: named("--user-key"),
        out: None,
        partial: false,
        quiet: true,
    };
    // The options that take a value (`--csv FILE`), as clap knows them from `CheckArgs`.
    let value_options: Vec<String> =
        <CheckArgs as clap::Args>::augment_args(clap::Command::new("check"))
            .get_arguments()
            .filter(|a| a.get_action().takes_values())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
    // The paths to check: the arguments that are neither options nor an option's value.
    let mut paths = Vec::new();
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        if value_options.iter().any(|o| o == a) {
            it.next();
        } else if !a.starts_with('-') {
            paths.push(PathBuf::from(a));
        }
    }
    let inputs: Vec<PathBuf> = paths
        .iter()
        .flat_map(|p| xml_files(std::slice::from_ref(p)).unwrap_or_default())
        .collect();
    if outputs_apart(&apart, &inputs).is_ok() {
        not_ran(&csv, &json, message);
    }
}

/// The error lists never take the place of an input or of each other: checked before anything
/// is written, so that not even the lists of a refused run overwrite an input.
fn outputs_apart(args: &CheckArgs, inputs: &[PathBuf]) -> anyhow::Result<()> {
    // The same file by any name: one path, or one (device, inode) when both exist (hard links),
    // or one place once links and `..` are resolved ([`resolved`]).
    let same_inode = |a: &Path, b: &Path| {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    };
    let same = |a: &Path, b: &Path| {
        a == b || same_inode(a, b) || resolved(a, 40).is_some_and(|a| resolved(b, 40) == Some(a))
    };
    // Nor a file the check reads: the key information, the user's key, the rule pack.
    let read = [
        (&args.key_info, "--key-info"),
        (&args.user_key, "--user-key"),
        (&args.pack, "--pack"),
    ];
    for list in [&args.csv, &args.json] {
        if let Some((_, option)) = read
            .iter()
            .find(|(f, _)| f.as_ref().is_some_and(|f| same(list, f)))
        {
            anyhow::bail!(
                "エラー一覧の出力先 {} は {option} で読み込むファイルです。別の名前を指定してください",
                list.display()
            );
        }
    }
    if same(&args.csv, &args.json) {
        anyhow::bail!(
            "--csv と --json に同じファイル（{}）は指定できません",
            args.csv.display()
        );
    }
    // Whatever else is there (a sealed file in --out, a document, a folder) is not the tool's
    // to replace: only an earlier error list is.
    for (list, csv) in [(&args.csv, true), (&args.json, false)] {
        if !replaceable(list, csv) {
            anyhow::bail!(
                "エラー一覧の出力先 {} にはエラー一覧ではないファイル（またはフォルダ）があるため、上書きしません。別の名前を指定してください",
                list.display()
            );
        }
    }
    for list in [&args.csv, &args.json] {
        if let Some(input) = inputs.iter().find(|f| same(list, f)) {
            anyhow::bail!(
                "エラー一覧の出力先 {} は読み込む XML ファイルです。別の名前を指定してください",
                input.display()
            );
        }
    }
    Ok(())
}

/// Whether the tool may write an error list at `path`: nothing is there yet, or an error list
/// of its own is (the CSV by its first line, `csv`; the JSON by its `tool_version`). A link is
/// judged by what it leads to.
fn replaceable(path: &Path, csv: bool) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        // Nothing there, or a link that leads nowhere yet (the file would be created).
        return true;
    };
    if !meta.is_file() {
        return false;
    }
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    if csv {
        bytes.starts_with(CSV_HEADER.as_bytes())
    } else {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|v| v.get("tool_version").is_some())
    }
}

/// A path as the file system will take it, whether or not the file exists yet: links followed
/// (one that leads nowhere, to where it leads: a file written through it lands there), `..`
/// resolved, then its name. `depth` bounds a loop of links.
fn resolved(p: &Path, depth: u8) -> Option<PathBuf> {
    if let Ok(real) = std::fs::canonicalize(p) {
        return Some(real);
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if depth > 0
        && let Ok(target) = std::fs::read_link(p)
    {
        return resolved(&parent.join(target), depth - 1);
    }
    Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
}

fn check(args: &CheckArgs, inputs: anyhow::Result<Vec<PathBuf>>) -> anyhow::Result<bool> {
    let cat = super::rules::catalogue(args.pack.as_deref(), args.ministry_key.as_deref())?;
    let real_today = crate::Clock::System.today_jst();
    let today = match &args.today {
        Some(t) => Date::parse(t)
            .ok_or_else(|| anyhow::anyhow!("--today {t:?} は YYYY-MM-DD の日付ではありません"))?,
        None => real_today,
    };
    let sealer = sealer(args, &cat, real_today)?;
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).map_err(|e| {
            anyhow::anyhow!("出力先 {} を作れません: {}", out.display(), io_reason(&e))
        })?;
    }
    let files = inputs?;
    if files.is_empty() {
        anyhow::bail!(
            "XML ファイル（*.xml）が見つかりません: {}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(files.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} ファイル {per_sec} 残り {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let outcomes = on_all_cores(files.len(), |i| {
        let path = &files[i];
        let name = path.display().to_string();
        let outcome = match std::fs::read(path) {
            Ok(bytes) => check_file(&cat, &name, &bytes, today, sealer.as_ref()),
            Err(e) => FileOutcome {
                errors: vec![ErrorLine::whole_file(
                    name,
                    format!("ファイルを読めません: {}", io_reason(&e)),
                )],
                ..Default::default()
            },
        };
        bar.inc(1);
        outcome
    });
    bar.finish_and_clear();
    let (mut sheets, mut passed, mut sealed_count, mut already, mut partial) = (0, 0, 0, 0, 0);
    let mut failed_sheets = 0;
    let mut errors = Vec::new();
    let expected = sealer.as_ref().map(|s| {
        let info = s.to.info();
        Expected {
            recipient: info.recipient.clone(),
            expires: info.expires.clone(),
            rule_pack: s.rule_pack_version.clone(),
            signer: s.by.public_key(),
        }
    });
    for (o, path) in outcomes.into_iter().zip(&files) {
        sheets += o.sheets;
        passed += o.passed;
        partial += o.sealed_partial;
        failed_sheets += o.failed_sheets();
        errors.extend(o.errors);
        if let (Some(dir), Some(expected)) = (&args.out, &expected) {
            for (name, bytes) in o.sealed {
                match write_sealed(&dir.join(&name), &bytes, expected) {
                    Ok(Written::New) => sealed_count += 1,
                    Ok(Written::AlreadyThere) => already += 1,
                    Err(message) => {
                        errors.push(ErrorLine::whole_file(path.display().to_string(), message))
                    }
                }
            }
        }
    }
    std::fs::write(&args.csv, errors_csv(&errors)).map_err(|e| {
        anyhow::anyhow!(
            "エラー一覧 {} を書けません: {}",
            args.csv.display(),
            io_reason(&e)
        )
    })?;
    let summary = serde_json::json!({
        "tool_version": crate::imports::TOOL_VERSION,
        "ran": true,
        "rule_pack_version": cat.version(),
        "files": files.len(),
        "sheets": sheets,
        "passed": passed,
        "sealed": sealed_count,
        "sealed_partial": partial,
        "already_sealed": already,
        "errors": errors,
    });
    std::fs::write(&args.json, serde_json::to_string_pretty(&summary)?).map_err(|e| {
        anyhow::anyhow!(
            "エラー一覧 {} を書けません: {}",
            args.json.display(),
            io_reason(&e)
        )
    })?;
    println!(
        "{} ファイル、様式 {sheets} 件: 合格 {passed} 件、不合格 {failed_sheets} 件、エラー {} 行（ルールパック {}）{}",
        files.len(),
        errors.len(),
        nsdb_rules::catalogue::version_label(cat.version()),
        match &args.out {
            Some(dir) => format!(
                "。暗号化ファイル {sealed_count} 件を {} に書き出しました{}{}",
                dir.display(),
                if partial > 0 {
                    format!("（うち未完成の部分取込 {partial} 件）")
                } else {
                    String::new()
                },
                if already > 0 {
                    format!("。同じ内容のファイルがすでにある {already} 件は書き直していません")
                } else {
                    String::new()
                }
            ),
            None => String::new(),
        }
    );
    if !errors.is_empty() {
        println!(
            "エラー一覧: {} と {}",
            args.csv.display(),
            args.json.display()
        );
    }
    Ok(errors.is_empty())
}

/// What [`write_sealed`] did.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    New,
    /// A sealed file of that name was there, sealed the same way (recipient, key information's
    /// expiry, rule pack: its name says the same sheet and signer): it was left as it was.
    AlreadyThere,
}

/// How this run seals: what a sealed file already in the output folder must match to be kept.
struct Expected {
    recipient: String,
    expires: String,
    rule_pack: String,
    signer: [u8; 32],
}

/// Writes a sealed file at `path`, whole or not at all (a temporary file beside it, then
/// renamed). A file already there is kept when it is signed by this run's user, unchanged (its
/// signature verifies) and its header says it was sealed as `expected` (recipient, key
/// information's expiry, rule pack); anything else there (a damaged file, one sealed otherwise)
/// is replaced. Errors: why the file could not be written, in Japanese.
fn write_sealed(path: &Path, bytes: &[u8], expected: &Expected) -> Result<Written, String> {
    use std::io::Write;
    let fail = |e: std::io::Error| format!("{} を書けません: {}", path.display(), io_reason(&e));
    if let Ok(existing) = std::fs::read(path)
        && let Ok(h) = sealed::signed_by(&existing, &expected.signer)
        && (&h.recipient, &h.key_info_expires, &h.rule_pack_version)
            == (&expected.recipient, &expected.expires, &expected.rule_pack)
    {
        return Ok(Written::AlreadyThere);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(Written::New)
}

/// `nsdb key-info …`: the node's key information (鍵情報) for the check tool.
#[derive(clap::Subcommand, Debug)]
pub enum KeyInfoCommand {
    /// On the node: writes its key information (unsigned) to carry to the hub; creates the
    /// node's seal key (DATA_DIR/seal.key, mode 600) if missing.
    Request {
        /// The node's TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Last day the key information is valid (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        expires: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// On the hub: signs a node's key information (the node must be enrolled and not revoked)
    /// and prints the hub's public key, which the check tool is given as --hub-key.
    Sign {
        /// The hub's data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The key information from `nsdb key-info request`.
        #[arg(long, value_name = "FILE")]
        request: PathBuf,
        /// The signed key information, to hand to hospitals.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Refuses to write over an existing file (a key information handed out must not be replaced
/// by accident).
fn refuse_existing(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!(
            "{} はすでにあります。上書きしません。別の名前を指定するか、古いファイルを移してください。",
            out.display()
        );
    }
    Ok(())
}

/// Runs `nsdb key-info …`.
pub fn key_info(command: KeyInfoCommand) -> anyhow::Result<()> {
    match command {
        KeyInfoCommand::Request {
            config,
            expires,
            out,
        } => {
            refuse_existing(&out)?;
            let config = crate::NodeConfig::from_file(&config)?;
            let info = crate::imports::key_info_request(&config, &expires)?;
            std::fs::write(&out, info.to_text()).map_err(|e| {
                anyhow::anyhow!("{} を書けません: {}", out.display(), io_reason(&e))
            })?;
            println!(
                "{} の鍵情報（有効期限 {expires}）を {} に書き出しました。ハブで署名してもらってください（nsdb key-info sign）。",
                config.name,
                out.display()
            );
        }
        KeyInfoCommand::Sign { data, request, out } => {
            refuse_existing(&out)?;
            let text = std::fs::read_to_string(&request).map_err(|e| {
                anyhow::anyhow!("{} を読めません: {}", request.display(), io_reason(&e))
            })?;
            let info = KeyInfo::parse(&text)?;
            let today = crate::Clock::System.today_jst().to_string();
            if info.expires < today {
                anyhow::bail!(
                    "この鍵情報の有効期限（{}）は過ぎています（今日は {today}）。ノードで新しい有効期限の鍵情報を作ってもらってください。",
                    info.expires
                );
            }
            let signed = info.sign_on_hub(&data)?;
            std::fs::write(&out, signed.to_text()).map_err(|e| {
                anyhow::anyhow!("{} を書けません: {}", out.display(), io_reason(&e))
            })?;
            println!(
                "{} の鍵情報（有効期限 {}）に署名し、{} に書き出しました。チェックツールに渡すハブの公開鍵（--hub-key）: {}",
                signed.node_name,
                signed.expires,
                out.display(),
                signed.hub_key
            );
        }
    }
    Ok(())
}
