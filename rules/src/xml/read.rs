//! Reading files in the layout as hospital systems write them: UTF-8 or Shift_JIS (CP932),
//! several sheets per file, any item may be missing, values normalised as the screen normalises
//! typed input (full-width digits, 和暦 dates, `2024/5/1`…).
//!
//! Two kinds of trouble: a file that cannot be trusted or understood at all (not XML, a DTD, an
//! unknown entity, the wrong root, too large, too deep, cut off) is refused as a whole with a
//! [`ReadError`]; a sheet that is readable but names an unknown form, section or item gets
//! [`SheetError`]s with their line and column, and its other values are still read.
//!
//! It must never expand an entity beyond XML's five predefined ones, never look at a DTD, and
//! never use more memory or time than the file's size and [`super::limits`] allow.

use std::borrow::Cow;
use std::collections::BTreeMap;

use encoding_rs::{DecoderResult, Encoding, SHIFT_JIS, UTF_8};
use quick_xml::Reader;
use quick_xml::errors::SyntaxError;
use quick_xml::events::{BytesStart, Event};

use super::limits::{
    MAX_ATTRIBUTES, MAX_DEPTH, MAX_FILE_BYTES, MAX_FILE_ERRORS, MAX_SHEET_ERRORS, MAX_SHEETS,
    MAX_VALUE_CHARS,
};
use super::write::xml_char;
use super::{Block, EDA, KOKUJI, LAYOUT_VERSION, ROOT, SHEET, blocks};
use crate::Catalogue;
use crate::form::{FormDef, ItemDef, SectionDef};

/// Why a whole file was refused. Every message says what to change in the file; locations are
/// 1-based lines and columns (characters) of the decoded text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(
        "ファイルが大きすぎます（{bytes} バイト、上限 {limit} バイト）。複数のファイルに分けてください。"
    )]
    TooLarge { bytes: usize, limit: usize },
    #[error("ファイルが空です。")]
    Empty,
    #[error("文字コード「{0}」には対応していません。UTF-8 または Shift_JIS で出力してください。")]
    UnsupportedEncoding(String),
    #[error(
        "{encoding} として読めないバイトがあります（先頭から {offset} バイト目）。XML 宣言の encoding と実際の文字コードを合わせてください。"
    )]
    Undecodable {
        encoding: &'static str,
        offset: usize,
    },
    #[error("XML の構文が正しくありません（{line}行 {column}列）: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "DOCTYPE 宣言は受け付けません（{line}行 {column}列）。外部実体・実体展開を防ぐためです。DOCTYPE を出力しないでください。"
    )]
    Doctype { line: usize, column: usize },
    #[error(
        "未定義の実体参照 &{name}; は受け付けません（{line}行 {column}列）。&lt; &gt; &amp; &quot; &apos; と文字参照だけが使えます。"
    )]
    Entity {
        line: usize,
        column: usize,
        name: String,
    },
    #[error("ルート要素が <{ROOT}> ではなく <{found}> です（{line}行 {column}列）。")]
    WrongRoot {
        line: usize,
        column: usize,
        found: String,
    },
    #[error("レイアウトに合いません（{line}行 {column}列）: {message}")]
    Layout {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("要素の入れ子が深すぎます（{line}行 {column}列、上限 {limit} 段）。")]
    TooDeep {
        line: usize,
        column: usize,
        limit: usize,
    },
    #[error("値が長すぎます（{line}行 {column}列、上限 {limit} 文字）。")]
    ValueTooLong {
        line: usize,
        column: usize,
        limit: usize,
    },
    #[error("要素の属性が多すぎます（{line}行 {column}列、上限 {limit} 個）。")]
    TooManyAttributes {
        line: usize,
        column: usize,
        limit: usize,
    },
    #[error("1ファイルの様式が多すぎます（上限 {limit} 件）。複数のファイルに分けてください。")]
    TooManySheets { limit: usize },
    #[error("誤りが多すぎます（{limit} 件を超えました）。出力のレイアウトを確かめてください。")]
    TooManyErrors { limit: usize },
    #[error(
        "ファイルが途中で終わっています（{line}行 {column}列、<{open}> の中）。出力し直してください。"
    )]
    Truncated {
        line: usize,
        column: usize,
        open: String,
    },
}

/// A problem with one sheet, where it is in the file and, when it concerns an item, which one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SheetError {
    pub line: usize,
    pub column: usize,
    /// The item id (`section.name`) the problem concerns, if any.
    pub item: Option<String>,
    pub message: String,
}

impl std::fmt::Display for SheetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}行 {}列: {}", self.line, self.column, self.message)
    }
}

/// One sheet as read from a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SheetRead {
    /// Position of the sheet in the file, from 1.
    pub index: usize,
    /// Line of its `<Sheet>` element.
    pub line: usize,
    /// The `ref` attribute: the hospital system's own reference, if given.
    pub reference: Option<String>,
    /// The `form` attribute as written ("" when missing).
    pub form: String,
    /// The `formVersion` attribute as written ("" when missing).
    pub form_version: String,
    /// Item id → value, normalised as the screen normalises typed input; items not in the file
    /// are absent. Empty when the form is unknown.
    pub values: BTreeMap<String, String>,
    /// What is wrong with the sheet's layout (not its values: those are the checks' job).
    pub errors: Vec<SheetError>,
}

/// Reads every sheet of a file. `catalogue` gives the forms sheets name; the values of a sheet
/// whose form it lacks are not read (the sheet carries the error).
pub fn read(catalogue: &Catalogue, bytes: &[u8]) -> Result<Vec<SheetRead>, ReadError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge {
            bytes: bytes.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let text = decode(bytes)?;
    if text.trim().is_empty() {
        return Err(ReadError::Empty);
    }
    Parser::new(catalogue, &text).run()
}

/// The text of the file: a BOM decides, else the XML declaration's `encoding`, else UTF-8.
fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, ReadError> {
    let (encoding, body) = match Encoding::for_bom(bytes) {
        Some((enc, len)) => (enc, &bytes[len..]),
        None => match declared_encoding(bytes) {
            None => (UTF_8, bytes),
            Some(label) => (encoding_for(&label)?, bytes),
        },
    };
    if encoding == UTF_8 {
        return std::str::from_utf8(body)
            .map(Cow::Borrowed)
            .map_err(|e| ReadError::Undecodable {
                encoding: "UTF-8",
                offset: e.valid_up_to() + bytes.len() - body.len(),
            });
    }
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let capacity = decoder
        .max_utf8_buffer_length_without_replacement(body.len())
        .ok_or(ReadError::TooLarge {
            bytes: bytes.len(),
            limit: MAX_FILE_BYTES,
        })?;
    let mut out = String::with_capacity(capacity);
    let (result, read) = decoder.decode_to_string_without_replacement(body, &mut out, true);
    match result {
        DecoderResult::InputEmpty => Ok(Cow::Owned(out)),
        DecoderResult::Malformed(bad, after) => Err(ReadError::Undecodable {
            encoding: encoding.name(),
            offset: (read - bad as usize - after as usize) + bytes.len() - body.len(),
        }),
        DecoderResult::OutputFull => Err(ReadError::Undecodable {
            encoding: encoding.name(),
            offset: read,
        }),
    }
}

/// The `encoding` of an XML declaration at the very start of the file, if there is one.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(256)];
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let at = decl.find("encoding")? + "encoding".len();
    let rest = decl[at..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].to_string())
}

fn encoding_for(label: &str) -> Result<&'static Encoding, ReadError> {
    match label.trim().to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Ok(UTF_8),
        "shift_jis" | "shift-jis" | "sjis" | "x-sjis" | "windows-31j" | "cp932" | "ms932"
        | "ms_kanji" | "csshiftjis" => Ok(SHIFT_JIS),
        _ => Err(ReadError::UnsupportedEncoding(label.to_string())),
    }
}

/// Line and column of byte offsets, advanced incrementally so that a file costs one pass.
struct Lines<'t> {
    text: &'t str,
    at: usize,
    line: usize,
    column: usize,
}

impl Lines<'_> {
    fn of(&mut self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        if offset < self.at {
            (self.at, self.line, self.column) = (0, 1, 1);
        }
        // Bytes, not chars: a column counts every byte that starts a character.
        for &b in &self.text.as_bytes()[self.at..offset] {
            if b == b'\n' {
                self.line += 1;
                self.column = 1;
            } else if b & 0xC0 != 0x80 {
                self.column += 1;
            }
        }
        self.at = offset;
        (self.line, self.column)
    }
}

/// What an open element is, for the elements below it.
enum Frame<'c> {
    Root,
    Sheet,
    Block(Block),
    Section(&'c SectionDef),
    Item(&'c ItemDef),
    /// 告示番号 or 枝番, with the form's value.
    Number(&'static str, u16),
    /// Anything already reported or not understood: its content is passed over.
    Skip,
}

/// The sheet being read.
struct Open<'c> {
    read: SheetRead,
    form: Option<&'c FormDef>,
    dropped: usize,
}

impl Open<'_> {
    fn error(&mut self, (line, column): (usize, usize), item: Option<String>, message: String) {
        if self.read.errors.len() < MAX_SHEET_ERRORS {
            self.read.errors.push(SheetError {
                line,
                column,
                item,
                message,
            });
        } else {
            self.dropped += 1;
        }
    }
}

struct Parser<'c, 't> {
    catalogue: &'c Catalogue,
    reader: Reader<&'t [u8]>,
    lines: Lines<'t>,
    stack: Vec<Frame<'c>>,
    sheets: Vec<SheetRead>,
    open: Option<Open<'c>>,
    root_done: bool,
    /// The value of the item element being read.
    value: String,
    value_chars: usize,
    /// Where the current event starts.
    here: (usize, usize),
    /// Errors of the sheets already closed.
    closed_errors: usize,
}

impl<'c, 't> Parser<'c, 't> {
    fn new(catalogue: &'c Catalogue, text: &'t str) -> Self {
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.trim_text(false);
        Parser {
            catalogue,
            reader,
            lines: Lines {
                text,
                at: 0,
                line: 1,
                column: 1,
            },
            stack: Vec::new(),
            sheets: Vec::new(),
            open: None,
            root_done: false,
            value: String::new(),
            value_chars: 0,
            here: (1, 1),
            closed_errors: 0,
        }
    }

    fn run(mut self) -> Result<Vec<SheetRead>, ReadError> {
        loop {
            let start = self.reader.buffer_position() as usize;
            self.here = self.lines.of(start);
            let event = match self.reader.read_event() {
                Ok(e) => e,
                Err(quick_xml::Error::Syntax(e)) if e != SyntaxError::InvalidBangMarkup => {
                    // Every other syntax error is markup the input ended inside of.
                    let (line, column) = self.lines.of(self.reader.error_position() as usize);
                    return Err(ReadError::Truncated {
                        line,
                        column,
                        open: self.open_element(),
                    });
                }
                Err(e) => {
                    let (line, column) = self.lines.of(self.reader.error_position() as usize);
                    return Err(ReadError::Syntax {
                        line,
                        column,
                        message: e.to_string(),
                    });
                }
            };
            match event {
                Event::DocType(_) => {
                    let (line, column) = self.here;
                    return Err(ReadError::Doctype { line, column });
                }
                Event::Start(e) => self.start(&e)?,
                Event::Empty(e) => {
                    self.start(&e)?;
                    self.end();
                }
                Event::End(_) => self.end(),
                Event::Text(t) => self.text(&t.xml10_content())?,
                Event::CData(t) => self.text(&t.xml10_content())?,
                Event::GeneralRef(r) => {
                    let c = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c),
                        Ok(None) => match &*r {
                            "lt" => Some('<'),
                            "gt" => Some('>'),
                            "amp" => Some('&'),
                            "apos" => Some('\''),
                            "quot" => Some('"'),
                            _ => None,
                        },
                        Err(e) => {
                            let (line, column) = self.here;
                            return Err(ReadError::Syntax {
                                line,
                                column,
                                message: e.to_string(),
                            });
                        }
                    };
                    let Some(c) = c else {
                        let (line, column) = self.here;
                        return Err(ReadError::Entity {
                            line,
                            column,
                            name: shorten(&r),
                        });
                    };
                    self.text(c.encode_utf8(&mut [0; 4]))?;
                }
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => break,
            }
            let open = self
                .open
                .as_ref()
                .map(|o| o.read.errors.len() + o.dropped)
                .unwrap_or(0);
            if self.closed_errors + open > MAX_FILE_ERRORS {
                return Err(ReadError::TooManyErrors {
                    limit: MAX_FILE_ERRORS,
                });
            }
        }
        if !self.stack.is_empty() {
            let (line, column) = self.lines.of(self.lines.text.len());
            let open = self.open_element();
            return Err(ReadError::Truncated { line, column, open });
        }
        if !self.root_done {
            return Err(ReadError::Empty);
        }
        Ok(self.sheets)
    }

    /// The innermost open element, for messages.
    fn open_element(&self) -> String {
        match self.stack.last() {
            None => "?".to_string(),
            Some(Frame::Root) => ROOT.to_string(),
            Some(Frame::Sheet) => SHEET.to_string(),
            Some(Frame::Block(b)) => b.element().to_string(),
            Some(Frame::Section(s)) => s.id.clone(),
            Some(Frame::Item(item)) => item.id.clone(),
            Some(Frame::Number(n, _)) => n.to_string(),
            Some(Frame::Skip) => "…".to_string(),
        }
    }

    fn layout(&self, message: String) -> ReadError {
        let (line, column) = self.here;
        ReadError::Layout {
            line,
            column,
            message,
        }
    }

    /// The element's attributes as (name, value), refusing too many or malformed ones.
    fn attributes(&self, e: &BytesStart<'_>) -> Result<Vec<(String, String)>, ReadError> {
        let mut out = Vec::new();
        for a in e.attributes() {
            if out.len() >= MAX_ATTRIBUTES {
                let (line, column) = self.here;
                return Err(ReadError::TooManyAttributes {
                    line,
                    column,
                    limit: MAX_ATTRIBUTES,
                });
            }
            let syntax = |message: String| {
                let (line, column) = self.here;
                ReadError::Syntax {
                    line,
                    column,
                    message,
                }
            };
            let a = a.map_err(|e| syntax(e.to_string()))?;
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| match e {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, name),
                    ) => {
                        let (line, column) = self.here;
                        ReadError::Entity { line, column, name }
                    }
                    e => syntax(e.to_string()),
                })?;
            if value.chars().count() > MAX_VALUE_CHARS {
                let (line, column) = self.here;
                return Err(ReadError::ValueTooLong {
                    line,
                    column,
                    limit: MAX_VALUE_CHARS,
                });
            }
            out.push((shorten(a.key.as_ref()), value.into_owned()));
        }
        Ok(out)
    }

    fn start(&mut self, e: &BytesStart<'_>) -> Result<(), ReadError> {
        if self.stack.len() >= MAX_DEPTH {
            let (line, column) = self.here;
            return Err(ReadError::TooDeep {
                line,
                column,
                limit: MAX_DEPTH,
            });
        }
        let name = shorten(e.name().as_ref());
        let attrs = self.attributes(e)?;
        let here = self.here;
        let frame = match self.stack.last() {
            None => {
                if self.root_done {
                    return Err(self.layout(format!(
                        "<{ROOT}> の後に <{name}> があります。ルート要素は1つだけです。"
                    )));
                }
                if name != ROOT {
                    let (line, column) = here;
                    return Err(ReadError::WrongRoot {
                        line,
                        column,
                        found: name,
                    });
                }
                for (k, v) in &attrs {
                    if k == "layout" && v != LAYOUT_VERSION {
                        return Err(self.layout(format!(
                            "layout=\"{v}\" には対応していません（このツールは layout=\"{LAYOUT_VERSION}\"）。"
                        )));
                    }
                }
                Frame::Root
            }
            Some(Frame::Root) => {
                if name != SHEET {
                    return Err(self.layout(format!(
                        "<{ROOT}> の中には <{SHEET}> だけを書きます（<{name}> があります）。"
                    )));
                }
                if self.sheets.len() >= MAX_SHEETS {
                    return Err(ReadError::TooManySheets { limit: MAX_SHEETS });
                }
                self.open_sheet(&attrs);
                Frame::Sheet
            }
            Some(Frame::Sheet) => self.block(&name, here),
            Some(Frame::Block(b)) => {
                let b = *b;
                self.section(b, &name, here)
            }
            Some(Frame::Section(s)) => {
                let s = *s;
                self.item(s, &name, here)
            }
            Some(Frame::Item(item)) => {
                let id = item.id.clone();
                self.sheet_error(
                    here,
                    Some(id.clone()),
                    format!("項目 {id} の中に要素 <{name}> は書けません。値だけを書いてください。"),
                );
                Frame::Skip
            }
            Some(Frame::Number(n, _)) => {
                let n = *n;
                self.sheet_error(
                    here,
                    None,
                    format!("<{n}> の中に要素 <{name}> は書けません。"),
                );
                Frame::Skip
            }
            Some(Frame::Skip) => Frame::Skip,
        };
        if !matches!(frame, Frame::Root | Frame::Sheet | Frame::Skip)
            && let Some((k, _)) = attrs.first()
        {
            self.sheet_error(
                here,
                None,
                format!("<{name}> の属性 {k} はこのレイアウトにありません。"),
            );
        }
        if matches!(frame, Frame::Item(_) | Frame::Number(..)) {
            self.value.clear();
            self.value_chars = 0;
        }
        self.stack.push(frame);
        Ok(())
    }

    fn sheet_error(&mut self, at: (usize, usize), item: Option<String>, message: String) {
        if let Some(open) = &mut self.open {
            open.error(at, item, message);
        }
    }

    fn open_sheet(&mut self, attrs: &[(String, String)]) {
        let here = self.here;
        let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let form_id = get("form").unwrap_or_default();
        let version = get("formVersion").unwrap_or_default();
        let mut open = Open {
            read: SheetRead {
                index: self.sheets.len() + 1,
                line: here.0,
                reference: get("ref"),
                form: form_id.clone(),
                form_version: version.clone(),
                values: BTreeMap::new(),
                errors: Vec::new(),
            },
            form: None,
            dropped: 0,
        };
        for (k, _) in attrs {
            if !matches!(k.as_str(), "form" | "formVersion" | "ref") {
                open.error(
                    here,
                    None,
                    format!("<{SHEET}> の属性 {k} はこのレイアウトにありません。"),
                );
            }
        }
        if form_id.is_empty() {
            open.error(
                here,
                None,
                format!("<{SHEET}> に form 属性（様式ID）がありません。"),
            );
        } else {
            match self.catalogue.form(&form_id) {
                None => open.error(
                    here,
                    None,
                    format!("様式 {form_id} はこのツールの様式一覧にありません。様式IDを確かめてください。"),
                ),
                Some(form) => {
                    if version != form.version {
                        open.error(
                            here,
                            None,
                            format!(
                                "様式 {form_id} の版が「{version}」です。現在の版は「{}」です。現在の版の様式で出力し直してください。",
                                form.version
                            ),
                        );
                    }
                    open.form = Some(form);
                }
            }
        }
        self.open = Some(open);
    }

    fn block(&mut self, name: &str, here: (usize, usize)) -> Frame<'c> {
        let Some(form) = self.open.as_ref().and_then(|o| o.form) else {
            return Frame::Skip;
        };
        match Block::from_element(name) {
            Some(b) if blocks(form).iter().any(|(x, _)| *x == b) => Frame::Block(b),
            Some(b) => {
                self.sheet_error(
                    here,
                    None,
                    format!(
                        "様式 {} には {}（<{name}>）がありません。",
                        form.id,
                        b.title()
                    ),
                );
                Frame::Skip
            }
            None => {
                let known: Vec<&str> = Block::ALL.iter().map(|b| b.element()).collect();
                self.sheet_error(
                    here,
                    None,
                    format!(
                        "<{SHEET}> の中の <{name}> はこのレイアウトにありません（{}のいずれかです）。",
                        known.join("・")
                    ),
                );
                Frame::Skip
            }
        }
    }

    fn section(&mut self, block: Block, name: &str, here: (usize, usize)) -> Frame<'c> {
        let Some(form) = self.open.as_ref().and_then(|o| o.form) else {
            return Frame::Skip;
        };
        if block == Block::Basic {
            if name == KOKUJI {
                return Frame::Number(KOKUJI, form.kokuji);
            }
            if name == EDA {
                return Frame::Number(EDA, form.eda);
            }
        }
        match form.sections.iter().find(|s| s.id == name) {
            Some(s) if Block::of(s) == block => Frame::Section(s),
            Some(s) => {
                let right = Block::of(s).element();
                self.sheet_error(
                    here,
                    None,
                    format!(
                        "<{name}>（{}）は <{}> ではなく <{right}> の中に書きます。",
                        s.title,
                        block.element()
                    ),
                );
                Frame::Skip
            }
            None => {
                self.sheet_error(
                    here,
                    None,
                    format!("様式 {} に項目群 <{name}> はありません。", form.id),
                );
                Frame::Skip
            }
        }
    }

    fn item(&mut self, section: &'c SectionDef, name: &str, here: (usize, usize)) -> Frame<'c> {
        let Some(open) = self.open.as_mut() else {
            return Frame::Skip;
        };
        let id = format!("{}.{name}", section.id);
        let Some(form) = open.form else {
            return Frame::Skip;
        };
        let Some(item) = section.items.iter().find(|i| i.id == id) else {
            open.error(
                here,
                Some(id.clone()),
                format!(
                    "様式 {} の {}（<{}>）に項目 <{name}> はありません。",
                    form.id, section.title, section.id
                ),
            );
            return Frame::Skip;
        };
        if open.read.values.contains_key(&id) {
            open.error(
                here,
                Some(id.clone()),
                format!("項目 {id} が2回書かれています。1回だけ書いてください。"),
            );
            return Frame::Skip;
        }
        Frame::Item(item)
    }

    fn text(&mut self, t: &str) -> Result<(), ReadError> {
        match self.stack.last() {
            Some(Frame::Item(_) | Frame::Number(..)) => {
                self.value_chars += t.chars().count();
                if self.value_chars > MAX_VALUE_CHARS {
                    let (line, column) = self.here;
                    return Err(ReadError::ValueTooLong {
                        line,
                        column,
                        limit: MAX_VALUE_CHARS,
                    });
                }
                self.value.push_str(t);
            }
            _ if t.len() > MAX_VALUE_CHARS * 4 => {
                let (line, column) = self.here;
                return Err(ReadError::ValueTooLong {
                    line,
                    column,
                    limit: MAX_VALUE_CHARS,
                });
            }
            _ if t.trim().is_empty() => {}
            None | Some(Frame::Root) => {
                return Err(self.layout(
                    "要素の外に文字があります。値は項目の要素の中に書いてください。".into(),
                ));
            }
            Some(Frame::Skip) => {}
            Some(_) => {
                let here = self.here;
                self.sheet_error(
                    here,
                    None,
                    "項目の要素の外に文字があります。値は項目の要素の中に書いてください。".into(),
                );
            }
        }
        Ok(())
    }

    fn end(&mut self) {
        let here = self.here;
        match self.stack.pop() {
            Some(Frame::Root) => self.root_done = true,
            Some(Frame::Sheet) => {
                if let Some(open) = self.open.take() {
                    self.closed_errors += open.read.errors.len() + open.dropped;
                    self.sheets.push(close(open));
                }
            }
            Some(Frame::Item(item)) => {
                let value = std::mem::take(&mut self.value);
                let id = item.id.clone();
                if let Some(open) = self.open.as_mut() {
                    if let Some(c) = value.chars().find(|&c| !xml_char(c)) {
                        open.error(
                            here,
                            Some(id.clone()),
                            format!(
                                "項目 {id} に使えない制御文字（U+{:04X}）があります。",
                                c as u32
                            ),
                        );
                    } else if !value.trim().is_empty() {
                        // The screen's own normalisation of typed input.
                        open.read
                            .values
                            .insert(id, crate::value::normalise(item, &value));
                    }
                }
            }
            Some(Frame::Number(name, expected)) => {
                let value = std::mem::take(&mut self.value);
                // Full-width digits are accepted here as in every number.
                let written: String = value
                    .trim()
                    .chars()
                    .map(|c| match c {
                        '０'..='９' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                        _ => c,
                    })
                    .collect();
                if !written.is_empty() && written.parse::<u16>().ok() != Some(expected) {
                    let label = if name == KOKUJI {
                        "告示番号"
                    } else {
                        "枝番"
                    };
                    self.sheet_error(
                        here,
                        None,
                        format!(
                            "{label}「{written}」がこの様式の{label}（{expected}）と違います。"
                        ),
                    );
                }
            }
            Some(Frame::Block(_) | Frame::Section(_) | Frame::Skip) | None => {}
        }
    }
}

/// The sheet as read, with the count of errors not kept.
fn close(mut open: Open<'_>) -> SheetRead {
    if open.dropped > 0 {
        let line = open.read.line;
        open.read.errors.push(SheetError {
            line,
            column: 1,
            item: None,
            message: format!("ほかに {} 件の誤りがあります。", open.dropped),
        });
    }
    open.read
}

/// A name from the file as it goes into a message: at most 64 characters (no layout name is
/// longer, so a shortened name still matches nothing).
fn shorten(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &name[..at]),
        None => name.to_string(),
    }
}
