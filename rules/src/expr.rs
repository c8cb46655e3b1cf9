//! The expressions of a form (CEL, Common Expression Language): compiled once when the catalogue
//! loads, then evaluated against each sheet.
//!
//! A sheet is presented to an expression as one map per section (`severity.hoehn_yahr`): codes
//! and texts are strings, integers `int`, decimals `double`, several codes a list of strings, and
//! an empty item is absent (`has(severity.hoehn_yahr)`). Only the items some expression of the
//! form reads are converted, so a sheet costs what its rules read. Compiling checks every item
//! reference against the form; this module must never evaluate an expression it has not checked,
//! and never reads anything but the values it is given.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::types::{CelDouble, CelInt, CelList, CelMap, CelMapKey, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Program, Value};

use crate::CatalogueError;
use crate::form::ItemType;

/// A compiled expression and the items it reads.
#[derive(Debug)]
pub struct Expression {
    pub source: String,
    program: Arc<Program>,
    /// Item ids it reads, sorted.
    pub items: Vec<String>,
}

/// The compiled expressions of one form, shared by every evaluation of it.
#[derive(Clone)]
pub struct Compiled(pub(crate) Arc<CompiledForm>);

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compiled { .. }")
    }
}

impl PartialEq for Compiled {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Everything compiled for one form, in the order the form defines it.
#[derive(Default)]
pub(crate) struct CompiledForm {
    pub env: Arc<Env>,
    /// The condition of each item required only under a condition, by item id.
    pub required_if: HashMap<String, Expression>,
    /// (item id, expression) of calculated items computed by CEL.
    pub calcs: BTreeMap<String, Expression>,
    /// One per `[[rule]]`, in order.
    pub rules: Vec<Expression>,
    /// judgment → outcome → condition.
    pub judgments: Vec<Vec<Vec<CondExpr>>>,
    /// The items expressions read, with their types: (section, field) → (item id, type).
    pub bound: BTreeMap<String, Vec<(String, String, ItemType)>>,
}

/// The environment shared by every expression: the CEL standard library.
pub(crate) fn env() -> Arc<Env> {
    Arc::new(Env::stdlib())
}

/// Programs already parsed while a catalogue loads, by source: the shared sections' expressions
/// are parsed once, not once per form.
pub(crate) type Parsed = std::cell::RefCell<HashMap<String, Arc<Program>>>;

/// What an expression may refer to: the form's items, by id.
pub(crate) struct Scope<'a> {
    pub file: &'a str,
    pub items: &'a HashMap<String, ItemType>,
    pub sections: &'a BTreeSet<String>,
    pub parsed: &'a Parsed,
}

impl Scope<'_> {
    /// Compiles `source`, written at `place` (an item id or a rule's name), checking every item
    /// it refers to.
    pub fn compile(&self, place: &str, source: &str) -> Result<Expression, CatalogueError> {
        let invalid = |message: String| CatalogueError::Invalid {
            file: self.file.to_string(),
            item: Some(place.to_string()),
            message,
        };
        let cached = self.parsed.borrow().get(source).cloned();
        let program = match cached {
            Some(p) => p,
            None => {
                let program = Program::compile(source).map_err(|errors| {
                    let e = errors.errors.first();
                    let (line, col) = e.map(|e| e.pos).unwrap_or((0, 0));
                    let msg = e.map(|e| e.msg.clone()).unwrap_or_default();
                    invalid(format!(
                        "式 {source:?} を解釈できません（{line}行{}列目）: {msg}",
                        col + 1
                    ))
                })?;
                let program = Arc::new(program);
                self.parsed
                    .borrow_mut()
                    .insert(source.to_string(), Arc::clone(&program));
                program
            }
        };
        let mut refs = BTreeSet::new();
        let mut unknown = Vec::new();
        walk(program.expression(), &mut Vec::new(), &mut |r| match r {
            Ref::Item(section, field) => {
                let id = format!("{section}.{field}");
                if self.items.contains_key(&id) {
                    refs.insert(id);
                } else if self.sections.contains(&section) {
                    unknown.push(id);
                } else {
                    unknown.push(format!("{section}.{field}（節 {section:?} はありません）"));
                }
            }
            Ref::Name(name) => unknown.push(name),
        });
        if let Some(name) = unknown.first() {
            let at = program
                .source_info()
                .offset_for(program.expression().id)
                .map(|(s, _)| s)
                .unwrap_or(0);
            let at = source
                .find(name.as_str())
                .or_else(|| name.split('.').next().and_then(|root| source.find(root)))
                .unwrap_or(at as usize);
            return Err(invalid(format!(
                "式 {source:?} が未定義の項目 {name:?} を参照しています（{}列目）。項目は 節.項目 の形で書きます（例: severity.grade）。",
                source[..at.min(source.len())].chars().count() + 1
            )));
        }
        Ok(Expression {
            source: source.to_string(),
            program,
            items: refs.into_iter().collect(),
        })
    }
}

enum Ref {
    Item(String, String),
    Name(String),
}

/// Visits every item reference (`section.field`) and every free name in an expression.
fn walk(e: &IdedExpr, bound: &mut Vec<String>, found: &mut dyn FnMut(Ref)) {
    match &e.expr {
        Expr::Select(s) => match &s.operand.expr {
            Expr::Ident(root) if !bound.contains(root) => {
                found(Ref::Item(root.clone(), s.field.clone()));
            }
            _ => walk(&s.operand, bound, found),
        },
        Expr::Ident(name) => {
            if !bound.contains(name) {
                found(Ref::Name(name.clone()));
            }
        }
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                walk(t, bound, found);
            }
            for a in &c.args {
                walk(a, bound, found);
            }
        }
        Expr::List(l) => {
            for x in &l.elements {
                walk(x, bound, found);
            }
        }
        Expr::Map(m) => {
            for en in &m.entries {
                if let EntryExpr::MapEntry(me) = &en.expr {
                    walk(&me.key, bound, found);
                    walk(&me.value, bound, found);
                }
            }
        }
        Expr::Struct(s) => {
            for en in &s.entries {
                match &en.expr {
                    EntryExpr::MapEntry(me) => walk(&me.value, bound, found),
                    EntryExpr::StructField(sf) => walk(&sf.value, bound, found),
                }
            }
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, bound, found);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                bound.push(v.clone());
            }
            bound.push(c.accu_var.clone());
            walk(&c.accu_init, bound, found);
            walk(&c.loop_cond, bound, found);
            walk(&c.loop_step, bound, found);
            walk(&c.result, bound, found);
            bound.truncate(before);
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The values of one sheet as CEL sees them: one map per section, built once per evaluation and
/// lent to every expression (the context resolves a section's name to its map), so evaluating a
/// condition copies nothing. Keys borrow the form's item names, values the sheet's text.
pub(crate) struct Bindings<'a> {
    sections: HashMap<&'a str, CelMap<'a>>,
}

/// The CEL value of one stored value, or `None` when it is empty or malformed (then it is absent
/// to expressions, and the value check reports it). Text borrows from `v` where it can.
pub(crate) fn to_val<'a>(ty: ItemType, v: Cow<'a, str>) -> Option<Box<dyn Val + 'a>> {
    if v.is_empty() {
        return None;
    }
    Some(match ty {
        ItemType::Integer => Box::new(CelInt::from(v.parse::<i64>().ok()?)),
        ItemType::Decimal => {
            let f: f64 = v.parse().ok()?;
            if !f.is_finite() {
                return None;
            }
            Box::new(CelDouble::from(f))
        }
        ItemType::Codes => {
            let codes: Vec<Box<dyn Val + 'a>> = match v {
                Cow::Borrowed(s) => s
                    .split(',')
                    .map(|c| Box::new(CelString::from(c)) as Box<dyn Val + 'a>)
                    .collect(),
                Cow::Owned(s) => s
                    .split(',')
                    .map(|c| Box::new(CelString::from(c.to_string())) as Box<dyn Val + 'a>)
                    .collect(),
            };
            Box::new(CelList::from(codes))
        }
        _ => Box::new(CelString::from(v)),
    })
}

impl<'a> Bindings<'a> {
    pub fn new(compiled: &'a CompiledForm, values: &'a BTreeMap<String, String>) -> Bindings<'a> {
        let mut sections = HashMap::with_capacity(compiled.bound.len());
        for (section, fields) in &compiled.bound {
            let mut map = HashMap::with_capacity(fields.len());
            for (field, id, ty) in fields {
                if let Some(v) = values
                    .get(id)
                    .and_then(|v| to_val(*ty, Cow::Borrowed(v.as_str())))
                {
                    map.insert(CelMapKey::from(field.as_str()), v);
                }
            }
            sections.insert(section.as_str(), CelMap::from(map));
        }
        Bindings { sections }
    }

    /// Sets (or clears) one item, e.g. a calculated value, if some expression reads it; says
    /// whether it did.
    pub fn set(
        &mut self,
        compiled: &'a CompiledForm,
        id: &str,
        value: Option<Box<dyn Val + 'a>>,
    ) -> bool {
        let Some((section, field)) = id.split_once('.') else {
            return false;
        };
        let Some((field, _, _)) = compiled
            .bound
            .get(section)
            .and_then(|fields| fields.iter().find(|(f, _, _)| f == field))
        else {
            return false;
        };
        let Some(map) = self.sections.get_mut(section) else {
            return false;
        };
        let mut entries = std::mem::take(map).into_inner();
        let key = CelMapKey::from(field.as_str());
        match value {
            Some(v) => entries.insert(key, v),
            None => entries.remove(&key),
        };
        *map = CelMap::from(entries);
        true
    }

    /// A context in which expressions read these values; cheap, as nothing is copied.
    pub fn context<'b>(&'b self, env: &Arc<Env>) -> Context<'b, 'b> {
        let mut ctx = Context::with_env(Arc::clone(env));
        ctx.set_variable_resolver(self);
        ctx
    }
}

impl VariableResolver for Bindings<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.sections
            .get(variable)
            .map(|map| CowVal::Borrowed(map as &dyn Val))
    }
}

/// The result of a condition: it holds, it does not, or it cannot be told (an item it reads is
/// empty, or the expression did not give a truth value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

/// One compiled condition of a judgment outcome.
#[derive(Debug)]
pub enum CondExpr {
    /// One expression.
    One(Expression),
    /// At least `at_least` of `members` hold.
    Count {
        members: Vec<Expression>,
        at_least: usize,
    },
}

impl CondExpr {
    /// Every item the condition reads, sorted, without repeats.
    pub fn items(&self) -> Vec<&str> {
        let mut v: Vec<&str> = match self {
            CondExpr::One(e) => e.items.iter().map(String::as_str).collect(),
            CondExpr::Count { members, .. } => members
                .iter()
                .flat_map(|m| m.items.iter().map(String::as_str))
                .collect(),
        };
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The condition's truth on what is entered. A count holds once enough members hold, fails
    /// once too few are left that could, and is unknown in between.
    pub(crate) fn truth(&self, ctx: &Context) -> Truth {
        match self {
            CondExpr::One(e) => e.truth(ctx),
            CondExpr::Count { members, at_least } => {
                let (mut yes, mut open) = (0, 0);
                for m in members {
                    match m.truth(ctx) {
                        Truth::True => yes += 1,
                        Truth::Unknown => open += 1,
                        Truth::False => {}
                    }
                }
                if yes >= *at_least {
                    Truth::True
                } else if yes + open < *at_least {
                    Truth::False
                } else {
                    Truth::Unknown
                }
            }
        }
    }

    /// The items of members (or the expression) whose truth is still unknown.
    pub(crate) fn open_items(&self, ctx: &Context) -> Vec<&str> {
        match self {
            CondExpr::One(e) => e.items.iter().map(String::as_str).collect(),
            CondExpr::Count { members, .. } => members
                .iter()
                .filter(|m| m.truth(ctx) == Truth::Unknown)
                .flat_map(|m| m.items.iter().map(String::as_str))
                .collect(),
        }
    }
}

impl Expression {
    pub(crate) fn truth(&self, ctx: &Context) -> Truth {
        match self.program.execute(ctx) {
            Ok(Value::Bool(true)) => Truth::True,
            Ok(Value::Bool(false)) => Truth::False,
            _ => Truth::Unknown,
        }
    }

    pub(crate) fn number(&self, ctx: &Context) -> Option<f64> {
        match self.program.execute(ctx) {
            Ok(Value::Int(n)) => Some(n as f64),
            Ok(Value::UInt(n)) => Some(n as f64),
            Ok(Value::Float(f)) if f.is_finite() => Some(f),
            _ => None,
        }
    }
}
