//! The code that names a hospital or clinic, 医療機関コード: 10 digits, 都道府県番号 (2 digits,
//! 01–47) + 点数表番号 (1) + 医療機関コード proper (7). [`InstitutionCode::parse`] is the one way
//! such a code enters the node — the configuration of a hospital node, `nsdb user add
//! --institution` (a clinic on the hub) and `nsdb provision issue --jurisdiction` for a
//! hospital — so a mistyped code (5 digits, a letter) is refused where it is typed instead of
//! naming an institution no sheet, grant or enrollment will ever match. Municipalities'
//! 自治体コード and the hub's own code are other codes and are not checked here.
//!
//! This module only checks the shape of a code; it must never look a code up or decide whether
//! the institution exists.

/// A checked 医療機関コード: exactly 10 ASCII digits with a prefecture number of 01–47.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstitutionCode(String);

/// Why a text is not a 医療機関コード (each message in Japanese, naming what was given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error(
        "医療機関コード「{given}」は {digits} 桁です。10 桁（都道府県番号 2 桁 + 点数表番号 1 桁 + 医療機関コード 7 桁）で入力してください。"
    )]
    Length { given: String, digits: usize },
    #[error("医療機関コード「{given}」に数字以外の文字があります。10 桁の数字で入力してください。")]
    NotDigits { given: String },
    #[error(
        "医療機関コード「{given}」の先頭 2 桁（都道府県番号 {prefecture}）は 01〜47 ではありません。"
    )]
    Prefecture { given: String, prefecture: String },
}

impl InstitutionCode {
    /// Checks `text` (surrounding spaces and full-width digits are accepted and normalised).
    /// Errors: [`CodeError`] when it is not 10 digits or its prefecture is not 01–47.
    pub fn parse(text: &str) -> Result<InstitutionCode, CodeError> {
        let given = text.trim();
        let code: String = given
            .chars()
            .map(|c| match c {
                '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
                c => c,
            })
            .collect();
        if !code.chars().all(|c| c.is_ascii_digit()) {
            return Err(CodeError::NotDigits {
                given: given.to_string(),
            });
        }
        if code.len() != 10 {
            return Err(CodeError::Length {
                given: given.to_string(),
                digits: code.len(),
            });
        }
        let prefecture = &code[..2];
        if !matches!(prefecture.parse::<u8>(), Ok(1..=47)) {
            return Err(CodeError::Prefecture {
                given: given.to_string(),
                prefecture: prefecture.to_string(),
            });
        }
        Ok(InstitutionCode(code))
    }

    /// The 10 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for InstitutionCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InstitutionCode::parse(s)
    }
}

impl std::fmt::Display for InstitutionCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_digits_with_a_prefecture_pass_and_a_five_digit_code_is_refused_clearly() {
        assert_eq!(
            InstitutionCode::parse(" 1399000010 ").unwrap().as_str(),
            "1399000010"
        );
        assert_eq!(
            InstitutionCode::parse("１３９９０００００１")
                .unwrap()
                .as_str(),
            "1399000001"
        );
        let err = InstitutionCode::parse("13990").unwrap_err();
        assert_eq!(
            err,
            CodeError::Length {
                given: "13990".into(),
                digits: 5
            }
        );
        assert!(err.to_string().contains("10 桁"), "{err}");
        assert!(matches!(
            InstitutionCode::parse("13990000101"),
            Err(CodeError::Length { digits: 11, .. })
        ));
        assert!(matches!(
            InstitutionCode::parse("13-9900001"),
            Err(CodeError::NotDigits { .. })
        ));
        assert!(matches!(
            InstitutionCode::parse("4899000010"),
            Err(CodeError::Prefecture { .. })
        ));
        assert!(matches!(
            InstitutionCode::parse("0099000010"),
            Err(CodeError::Prefecture { .. })
        ));
    }
}
