//! `nsdb xml …`: the published XML layout's schema (XSD) and a sample file of each form, generated
//! from the form catalogue (docs/xml-layout.md), and the list of forms.
//!
//! Thin by design: generating is `nsdb_rules::xml`; this only prints. It touches no database
//! and no network.

use nsdb_rules::{Catalogue, FormDef};

fn form<'a>(cat: &'a Catalogue, id: &str) -> anyhow::Result<&'a FormDef> {
    cat.form(id)
        .ok_or_else(|| anyhow::anyhow!("no form {id:?}; `nsdb xml forms` lists them"))
}

/// `nsdb xml schema FORM`: the form's XSD on standard output.
pub fn schema(cat: &Catalogue, id: &str) -> anyhow::Result<()> {
    print!("{}", nsdb_rules::xml::schema(form(cat, id)?));
    Ok(())
}

/// `nsdb xml sample FORM`: a file with one sheet of the form, with made-up values that pass
/// its checks.
pub fn sample(cat: &Catalogue, id: &str) -> anyhow::Result<()> {
    print!("{}", nsdb_rules::xml::sample(form(cat, id)?));
    Ok(())
}

/// `nsdb xml forms`: one line per form: id, version, 告示番号 and disease, tab-separated.
pub fn forms(cat: &Catalogue) -> anyhow::Result<()> {
    println!("# rule pack {}", cat.info().label());
    for f in cat.forms() {
        println!("{}\t{}\t{}\t{}", f.id, f.version, f.kokuji, f.disease);
    }
    Ok(())
}
