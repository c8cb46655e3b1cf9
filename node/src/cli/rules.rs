//! `nsdb rules …`: list the forms and the pack version (all, or those with machine judgment and
//! the share of recipients they cover), lint the form files, check a sheet file, create the
//! ministry's rule-pack key and sign a pack.
//!
//! Thin by design: reading files and printing is all that happens here; checking, calculating,
//! judging and verifying are `nsdb-rules`, signing is `nsdb-provisioning`. It never prints a
//! private key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nsdb_rules::{Catalogue, Date};

/// Loads the catalogue a command works on: a verified pack, or the built-in forms.
pub fn catalogue(pack: Option<&Path>, ministry_key: Option<&str>) -> anyhow::Result<Catalogue> {
    match (pack, ministry_key) {
        (None, None) => Catalogue::builtin().context("the built-in form catalogue"),
        (Some(p), Some(k)) => crate::load_catalogue(Some(&crate::config::RulesConfig {
            pack: p.to_path_buf(),
            ministry_key: k.to_string(),
        })),
        _ => anyhow::bail!("give both --pack and --ministry-key, or neither"),
    }
}

/// `nsdb rules list`: one line per form, after the pack version. `judged` keeps the forms with
/// machine judgment and ends with the share of 指定難病 recipients they cover (patients as each
/// criteria text states them).
pub fn list(cat: &Catalogue, json: bool, judged: bool) -> anyhow::Result<()> {
    let forms: Vec<&nsdb_rules::FormDef> = cat
        .forms()
        .into_iter()
        .filter(|f| !judged || f.level() == nsdb_rules::form::FormLevel::MachineJudged)
        .collect();
    let share = judged.then(|| cat.judged_share());
    if json {
        let forms: Vec<serde_json::Value> = forms
            .iter()
            .map(|f| {
                serde_json::json!({
                    "id": f.id, "kind": f.kind.label(), "number": f.number(), "kokuji": f.kokuji, "eda": f.eda,
                    "disease": f.disease, "version": f.version, "level": f.level().label(),
                    "calculated": f.calculated_items().map(|i| i.id.clone()).collect::<Vec<_>>(),
                    "judgments": f.judgments.iter().map(|j| j.title.clone()).collect::<Vec<_>>(),
                    "unverified_items": f.items().filter(|i| i.unverified.is_some()).count(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "pack": cat.info(), "forms": forms, "judged_share": share,
            }))?
        );
        return Ok(());
    }
    println!("rule pack: {}", cat.info().label());
    for f in &forms {
        println!(
            "{:<16} {:<14} {:<9} {:<28} {:<8} items {:>3}  calculated {:>2}  judgments {}",
            f.id,
            f.kind.label(),
            f.number(),
            f.disease,
            f.level().label(),
            f.items().count(),
            f.calculated_items().count(),
            f.judgments.len()
        );
    }
    if let Some(share) = share {
        println!(
            "machine judgment covers {:.1} % of 指定難病 recipients ({} of {}, as the criteria texts \
             state them) with {} forms",
            share.percent(),
            share.judged,
            share.total,
            share.judged_forms.len()
        );
    }
    Ok(())
}

/// `nsdb rules lint [--forms DIR]`: every finding of the rules lint (undefined items, unreachable
/// judgments, scales cited but unused, messages that name no item, missing sources), one per
/// line as `file: item: message`. Fails when there is any.
pub fn lint(forms: Option<&PathBuf>) -> anyhow::Result<()> {
    let owned = form_files(forms)?;
    let files: Vec<(&str, &str)> = owned
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let findings = nsdb_rules::lint::lint_files(&files);
    for f in &findings {
        match &f.item {
            Some(item) => println!("{}: {item}: {}", f.file, f.message),
            None => println!("{}: {}", f.file, f.message),
        }
    }
    if findings.is_empty() {
        eprintln!("{} form files: no findings", files.len());
        Ok(())
    } else {
        anyhow::bail!("{} findings in the form files", findings.len())
    }
}

/// The form files of `dir` (every `*.toml` but `*.cases.toml`, and the disease list
/// `diseases.tsv`), or the built-in ones, as (file name, text), sorted by name.
fn form_files(forms: Option<&PathBuf>) -> anyhow::Result<Vec<(String, String)>> {
    let Some(dir) = forms else {
        return Ok(nsdb_rules::catalogue::builtin_files()
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect());
    };
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let form = name.ends_with(".toml") && !name.ends_with(".cases.toml");
        if form || nsdb_rules::diseases::is_disease_list(&name) {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            v.push((name, text));
        }
    }
    v.sort();
    Ok(v)
}

/// `nsdb rules check FORM SHEET.json`: the sheet is a JSON object of item id → value (or
/// `{"items": {...}}`); prints derived values, check messages and the judgment as JSON.
pub fn check(cat: &Catalogue, form_id: &str, sheet: &Path, today: Date) -> anyhow::Result<()> {
    let form = cat
        .form(form_id)
        .ok_or_else(|| anyhow::anyhow!("no form {form_id:?}; `nsdb rules list` shows them"))?;
    let text = std::fs::read_to_string(sheet)
        .with_context(|| format!("cannot read {}", sheet.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", sheet.display()))?;
    let obj = v.get("items").unwrap_or(&v).as_object().ok_or_else(|| {
        anyhow::anyhow!("{}: expected an object of item → value", sheet.display())
    })?;
    let mut input = BTreeMap::new();
    for (k, val) in obj {
        let s = match val {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        input.insert(k.clone(), s);
    }
    let values = nsdb_rules::normalise_input(form, &input)?;
    let ev = nsdb_rules::evaluate(form, &values, today);
    let out = serde_json::json!({
        "pack": cat.info(),
        "form": form.id,
        "form_version": form.version,
        "derived": ev.derived,
        "messages": ev.messages,
        "judgment": ev.judgment,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `nsdb rules keygen --out FILE`: a new ministry rule-pack key; prints its public key.
pub fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = nsdb_provisioning::RulePackKey::create(out)?;
    println!("{}", hex::encode(key.public_key()));
    eprintln!(
        "wrote the private key to {} (mode 600); configure nodes with the public key above as rules.ministry_key",
        out.display()
    );
    Ok(())
}

/// `nsdb rules pack --key FILE --version V --out FILE [--forms DIR]`: signs the forms of `DIR`
/// (every `*.toml` but `*.cases.toml`, and `diseases.tsv`), or the built-in forms, into a pack.
pub fn pack(key: &Path, version: &str, out: &Path, forms: Option<&PathBuf>) -> anyhow::Result<()> {
    let key = nsdb_provisioning::RulePackKey::load(key)?;
    let owned = form_files(forms)?;
    let files: Vec<(&str, &str)> = owned
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    // Refuse to sign forms that do not load.
    let cat = Catalogue::from_texts(&files)?;
    let payload = nsdb_rules::pack::payload(version, &files);
    let sig = key.sign(payload.as_bytes());
    let bytes = nsdb_rules::pack::assemble(&payload, &key.public_key(), &sig);
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "signed {} forms as version {version} into {}",
        cat.forms().len(),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_made_here_loads_and_a_changed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ministry.key");
        keygen(&key).unwrap();
        let public = hex::encode(
            nsdb_provisioning::RulePackKey::load(&key)
                .unwrap()
                .public_key(),
        );
        let out = dir.path().join("rules.pack");
        pack(&key, "2026.04-1", &out, None).unwrap();
        let cat = catalogue(Some(&out), Some(&public)).unwrap();
        assert_eq!(cat.version(), "2026.04-1");
        let text = std::fs::read_to_string(&out)
            .unwrap()
            .replace("Hoehn-Yahr", "Hoehn-Yahl");
        std::fs::write(&out, text).unwrap();
        let err = format!("{:#}", catalogue(Some(&out), Some(&public)).unwrap_err());
        assert!(err.contains("署名の後に変更されたか壊れています"), "{err}");
        let err = format!(
            "{:#}",
            catalogue(Some(&dir.path().join("missing.pack")), Some(&public)).unwrap_err()
        );
        assert!(err.contains("cannot read the rule pack"), "{err}");
    }

    #[test]
    fn a_pack_signed_from_the_forms_folder_holds_every_disease() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ministry.key");
        keygen(&key).unwrap();
        let public = hex::encode(
            nsdb_provisioning::RulePackKey::load(&key)
                .unwrap()
                .public_key(),
        );
        let forms = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/forms"));
        let out = dir.path().join("rules.pack");
        pack(&key, "2026.04-2", &out, Some(&forms)).unwrap();
        let from_folder = catalogue(Some(&out), Some(&public)).unwrap();
        let builtin = Catalogue::builtin().unwrap();
        assert_eq!(from_folder.forms().len(), builtin.forms().len());
        assert!(from_folder.form("rinko-300").is_some());
    }

    #[test]
    fn the_built_in_forms_lint_clean_and_a_broken_folder_does_not() {
        lint(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("broken.toml"), "[form]\nid = ").unwrap();
        let err = format!("{:#}", lint(Some(&dir.path().to_path_buf())).unwrap_err());
        assert!(err.contains("findings"), "{err}");
    }
}
