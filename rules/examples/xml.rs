//! Prints a form's XML schema or sample, or measures reading, until `nsdb xml …` is wired:
//!
//! ```text
//! cargo run -p nsdb-rules --example xml -- schema rinko-002 > rinko-002.xsd
//! cargo run -p nsdb-rules --example xml -- sample rinko-002 > rinko-002.xml
//! cargo run -p nsdb-rules --example xml -- forms
//! cargo run --release -p nsdb-rules --example xml -- bench 10000
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use nsdb_rules::xml::{SheetOut, read, sample, sample_values, schema, write};
use nsdb_rules::{Catalogue, Mode, check};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cat = match Catalogue::builtin() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let form = |id: &str| match cat.form(id) {
        Some(f) => f,
        None => {
            eprintln!("unknown form {id}; `forms` lists them");
            std::process::exit(2);
        }
    };
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["schema", id] => print!("{}", schema(form(id))),
        ["sample", id] => print!("{}", sample(form(id))),
        ["forms"] => {
            for f in cat.forms() {
                println!("{}\t{}\t{}", f.id, f.version, f.disease);
            }
        }
        ["bench", n] => bench(&cat, n.parse().unwrap_or(10_000)),
        _ => {
            eprintln!("usage: xml schema FORM | sample FORM | forms | bench N");
            std::process::exit(2);
        }
    }
}

/// Reads and checks N one-sheet files (each form's sample in turn) on one core.
fn bench(cat: &Catalogue, n: usize) {
    let forms = cat.forms();
    let files: Vec<(String, &nsdb_rules::FormDef)> = forms
        .iter()
        .map(|f| {
            let v: BTreeMap<String, String> = sample_values(f);
            let text = write(&[SheetOut {
                form: f,
                reference: None,
                values: &v,
            }])
            .expect("write");
            (text, *f)
        })
        .collect();
    let started = Instant::now();
    for i in 0..n {
        let (text, _) = &files[i % files.len()];
        read(cat, text.as_bytes()).expect("read");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} files read in {secs:.3} s: {:.0} files/s on one core",
        n as f64 / secs
    );
    let today = nsdb_rules::Date::new(2025, 4, 1).expect("date");
    let started = Instant::now();
    let mut messages = 0;
    for i in 0..n {
        let (text, form) = &files[i % files.len()];
        let sheets = read(cat, text.as_bytes()).expect("read");
        messages += check(form, &sheets[0].values, Mode::Complete, today).len();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} files read and checked in {secs:.3} s: {:.0} files/s on one core ({messages} messages)",
        n as f64 / secs
    );
}
