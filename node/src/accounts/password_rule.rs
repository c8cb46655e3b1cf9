//! The rule a new password must meet, with the message shown beside the password field.
//!
//! The rule (docs/security.md, "Passwords"): at least [`MIN_PASSWORD_CHARS`] characters, not
//! only blanks, not one character or one run of characters repeated (`aaaa…`, `clerkclerk`,
//! `1212…`), not containing the login ID or the login ID reversed, and not one of
//! [`COMMON_PASSWORDS`]. Comparisons are made on the NFKC form (full-width letters and digits
//! count as their ASCII selves), ignoring case and surrounding blanks. This module only judges;
//! it must never log, store or echo the password it is given.

/// The shortest password a real account may have (the demo's `demo` is seeded directly).
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Passwords of ten characters or more that head the public lists of leaked passwords (keyboard
/// rows, digit runs, "password"/"iloveyou"/"qwerty" with digits) and a few this system invites
/// (its own name, 難病, 指定医 in romaji). Not a breach corpus: it stops the guesses an attacker
/// tries first, the length and the lock stop the rest. Compared in lower case.
pub const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "0123456789",
    "0987654321",
    "9876543210",
    "12345678910",
    "123456789a",
    "a123456789",
    "1234567890a",
    "123456789q",
    "1234512345",
    "1234554321",
    "1122334455",
    "1357924680",
    "qwertyuiop",
    "qwertyuiop1",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "1qaz2wsx3edc",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "q1w2e3r4t5",
    "zaq12wsxcde3",
    "asdfghjkl1",
    "asdfghjkl;",
    "zxcvbnm123",
    "abcdefghij",
    "abcd123456",
    "abc1234567",
    "abcdef1234",
    "password12",
    "password123",
    "password1234",
    "password1!",
    "password!1",
    "passw0rd12",
    "p@ssw0rd12",
    "p@ssword123",
    "iloveyou12",
    "iloveyou123",
    "welcome123",
    "welcome1234",
    "letmein123",
    "changeme123",
    "administrator",
    "admin12345",
    "admin123456",
    "football123",
    "baseball123",
    "sunshine123",
    "princess123",
    "dragon1234",
    "monkey1234",
    "superman123",
    "trustno1234",
    "nsdb123456",
    "nsdbnsdbnsdb",
    "nanbyou123",
    "nanbyo1234",
    "shiteii123",
    "shiteii1234",
    "hospital123",
    "byouin1234",
];

/// Why a new password was refused: the text is for the person choosing it, shown beside the
/// password field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    #[error("パスワードは{MIN_PASSWORD_CHARS}文字以上にしてください。")]
    TooShort,
    #[error("空白だけ、または同じ文字や同じ並びの繰り返しのパスワードは使えません。")]
    Blank,
    #[error("ユーザIDを（逆順でも）含むパスワードは使えません。")]
    IsLogin,
    #[error("よく使われるパスワードのため使えません。推測されにくいものにしてください。")]
    Common,
}

/// Judges `password` as the new password of the account `login`.
///
/// Errors: the first rule it breaks, in the order of the enum.
pub fn check(login: &str, password: &str) -> Result<(), PasswordRejected> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordRejected::TooShort);
    }
    use unicode_normalization::UnicodeNormalization;
    let folded: String = password.nfkc().collect();
    let trimmed = folded.trim();
    let chars: Vec<char> = trimmed.chars().collect();
    // One character, or one run of characters, over and over.
    let repeated = (1..=chars.len() / 2).any(|unit| {
        chars.len().is_multiple_of(unit) && chars.chunks(unit).all(|c| c == &chars[..unit])
    });
    if chars.is_empty() || repeated {
        return Err(PasswordRejected::Blank);
    }
    let lower = trimmed.to_lowercase();
    let login: String = login.nfkc().collect::<String>().trim().to_lowercase();
    let reversed: String = login.chars().rev().collect();
    // A login of a few characters only (`doc`) would refuse too much; from three on it counts.
    if login.chars().count() >= 3 && (lower.contains(&login) || lower.contains(&reversed)) {
        return Err(PasswordRejected::IsLogin);
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(PasswordRejected::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_an_attacker_tries_first() {
        assert_eq!(check("doctor", "short"), Err(PasswordRejected::TooShort));
        assert_eq!(check("doctor", "          "), Err(PasswordRejected::Blank));
        assert_eq!(
            check("doctor", "aaaaaaaaaaaa"),
            Err(PasswordRejected::Blank)
        );
        assert_eq!(
            check("suzuki.taro", "suzuki.taro"),
            Err(PasswordRejected::IsLogin)
        );
        assert_eq!(
            check("suzuki.taro", "ORAT.IKUZUS"),
            Err(PasswordRejected::IsLogin)
        );
        assert_eq!(
            check("doctor", "Password123"),
            Err(PasswordRejected::Common)
        );
        assert_eq!(check("doctor", "1234567890"), Err(PasswordRejected::Common));
        // Full-width is the same password; the login with digits, or twice, is the login.
        assert_eq!(
            check("doctor", "１２３４５６７８９０"),
            Err(PasswordRejected::Common)
        );
        assert_eq!(
            check("reviewer", "reviewer12"),
            Err(PasswordRejected::IsLogin)
        );
        assert_eq!(
            check("reviewer", "reviewerreviewer"),
            Err(PasswordRejected::Blank)
        );
        assert_eq!(check("clerk", "Clerkclerk"), Err(PasswordRejected::IsLogin));
        assert_eq!(check("doctor", "klerkklerk"), Err(PasswordRejected::Blank));
        assert_eq!(check("doctor", "1212121212"), Err(PasswordRejected::Blank));
    }

    #[test]
    fn accepts_a_long_unusual_password() {
        assert_eq!(check("suzuki.taro", "hinoki-kage 7 tsuki"), Ok(()));
        assert_eq!(check("suzuki.taro", "  春の雨と青い自転車  "), Ok(()));
    }

    #[test]
    fn every_listed_password_is_long_enough_to_need_listing() {
        for p in COMMON_PASSWORDS {
            assert!(p.chars().count() >= MIN_PASSWORD_CHARS, "{p}");
            assert_eq!(*p, p.to_lowercase(), "{p}");
        }
    }
}
