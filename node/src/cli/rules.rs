//! `nsdb rules …`: list the forms and the pack version, check a sheet file, create the ministry's
//! rule-pack key and sign a pack.
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

/// `nsdb rules list`: one line per form, after the pack version.
pub fn list(cat: &Catalogue, json: bool) -> anyhow::Result<()> {
    if json {
        let forms: Vec<serde_json::Value> = cat
            .forms()
            .iter()
            .map(|f| {
                serde_json::json!({
                    "id": f.id, "kind": f.kind.label(), "kokuji": f.kokuji, "eda": f.eda,
                    "disease": f.disease, "version": f.version,
                    "calculated": f.calculated_items().map(|i| i.id.clone()).collect::<Vec<_>>(),
                    "judgments": f.judgments.iter().map(|j| j.title.clone()).collect::<Vec<_>>(),
                    "unverified_items": f.items().filter(|i| i.unverified.is_some()).count(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"pack": cat.info(), "forms": forms}))?
        );
        return Ok(());
    }
    println!("rule pack: {}", cat.info().label());
    for f in cat.forms() {
        println!(
            "{:<16} {:<14} {:<4} {:<28} items {:>3}  calculated {:>2}  judgments {}",
            f.id,
            f.kind.label(),
            f.kokuji,
            f.disease,
            f.items().count(),
            f.calculated_items().count(),
            f.judgments.len()
        );
    }
    Ok(())
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
/// (every `*.toml` but `*.cases.toml`), or the built-in forms, into a pack.
pub fn pack(key: &Path, version: &str, out: &Path, forms: Option<&PathBuf>) -> anyhow::Result<()> {
    let key = nsdb_provisioning::RulePackKey::load(key)?;
    let owned: Vec<(String, String)> = match forms {
        None => nsdb_rules::catalogue::builtin_files()
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        Some(dir) => {
            let mut v = Vec::new();
            for e in
                std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
            {
                let p = e?.path();
                let name = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                if name.ends_with(".toml") && !name.ends_with(".cases.toml") {
                    v.push((name, std::fs::read_to_string(&p)?));
                }
            }
            v.sort();
            v
        }
    };
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
        assert!(err.contains("changed after signing"), "{err}");
        let err = format!(
            "{:#}",
            catalogue(Some(&dir.path().join("missing.pack")), Some(&public)).unwrap_err()
        );
        assert!(err.contains("cannot read the rule pack"), "{err}");
    }
}
