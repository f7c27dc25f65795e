//! What a contact search asks for, word by word, as both stores match it: each word of
//! the query must match a word of the contact's name, e-mail, company or phone, by
//! prefix (as the user types), or, for longer words, with a typo forgiven; digits match
//! anywhere in the phone's digits, whatever the punctuation on either side.

/// A query longer than this many words is cut: each word is a condition of the statement.
pub const MAX_WORDS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// Letters (and digits), lower-cased with accents folded; `typos` edits are forgiven.
    Text { text: String, typos: u8 },
    /// Digits alone: found anywhere in a phone number's digits (or in another word).
    Digits(String),
}

/// The words of a normalized search (`ContactListQuery::search`). A query made only of
/// digits and phone punctuation (`+1 (555) 010-0042`) is one number.
pub fn words(search: &str) -> Vec<Word> {
    let phone_like = search.chars().any(|c| c.is_ascii_digit())
        && search
            .chars()
            .all(|c| c.is_ascii_digit() || " ()+-./".contains(c));
    if phone_like {
        return vec![Word::Digits(
            search.chars().filter(char::is_ascii_digit).collect(),
        )];
    }
    let folded = fold(search);
    let mut out: Vec<Word> = Vec::new();
    for w in folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = if w.bytes().all(|b| b.is_ascii_digit()) {
            Word::Digits(w.to_owned())
        } else {
            Word::Text {
                text: w.to_owned(),
                typos: typos_forgiven(w.chars().count()),
            }
        };
        if !out.contains(&word) {
            out.push(word);
        }
        if out.len() == MAX_WORDS {
            break;
        }
    }
    out
}

/// One typo in a word of 5 letters or more, two from 9: fewer letters leave too little to
/// tell a typo from another word.
pub fn typos_forgiven(letters: usize) -> u8 {
    match letters {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// `text` lower-cased, with the accents of Latin letters removed and their ligatures and
/// other letters spelled out (`ß` as `ss`, `ø` as `o`), Greek vowels without their tonos
/// and `ё` as `е`: what Postgres's `unaccent` makes of the stored words, and what the
/// embedded store's documents are folded to before its tokenizer (migration
/// `sqlite/…_search_fold.sql`), so a word is found the same way on both stores.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        // Combining marks (`İ` lower-cases to `i` and a combining dot) carry no letter.
        if ('\u{300}'..='\u{36f}').contains(&c) {
            continue;
        }
        match base_letter(c) {
            Some(base) => out.push_str(base),
            None => out.push(c),
        }
    }
    out
}

fn base_letter(c: char) -> Option<&'static str> {
    const FOLDS: [(&str, &str); 33] = [
        ("a", "àáâãäåāăąǎạảấầẩẫậắằẳẵặ"),
        ("c", "çćĉċč"),
        ("d", "ďđð"),
        ("e", "èéêëēĕėęěẹẻẽếềểễệ"),
        ("g", "ĝğġģ"),
        ("h", "ĥħ"),
        ("i", "ìíîïĩīĭįıǐỉị"),
        ("j", "ĵ"),
        ("k", "ķ"),
        ("l", "ĺļľŀł"),
        ("n", "ñńņňŉŋ"),
        ("o", "òóôõöøōŏőǒơọỏốồổỗộớờởỡợ"),
        ("r", "ŕŗř"),
        ("s", "śŝşšſș"),
        ("t", "ţťŧț"),
        ("u", "ùúûüũūŭůűųǔưụủứừửữựǖǘǚǜ"),
        ("w", "ŵ"),
        ("y", "ýÿŷỳỵỷỹ"),
        ("z", "źżž"),
        ("ss", "ß"),
        ("ae", "æ"),
        ("oe", "œ"),
        ("th", "þ"),
        ("ij", "ĳ"),
        ("q", "ĸ"),
        ("α", "ά"),
        ("ε", "έ"),
        ("η", "ή"),
        ("ι", "ίϊΐ"),
        ("ο", "ό"),
        ("υ", "ύϋΰ"),
        ("ω", "ώ"),
        ("е", "ё"),
    ];
    if c.is_ascii() {
        return None;
    }
    FOLDS
        .iter()
        .find(|(_, accented)| accented.contains(c))
        .map(|(base, _)| *base)
}

/// Whether `a` and `b` are at most `k` single-letter edits apart (Levenshtein), in
/// O(len·k): what counts as a forgiven typo.
pub fn within_edits(a: &str, b: &str, k: u8) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let k = usize::from(k);
    if a.len().abs_diff(b.len()) > k {
        return false;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            row[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(row[j] + 1);
        }
        if row.iter().min().is_some_and(|m| *m > k) {
            return false;
        }
        prev = row;
    }
    prev[b.len()] <= k
}

/// Pieces of `word` of which at least one is in any word `typos` edits away, unchanged
/// (there are more pieces than edits): a cheap, indexable test that rules out most words
/// before the edit distance is computed. The first piece stays at the word's start.
pub fn pieces(word: &str, typos: u8) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let n = usize::from(typos) + 1;
    (0..n)
        .map(|i| {
            let (from, to) = (i * chars.len() / n, (i + 1) * chars.len() / n);
            chars[from..to].iter().collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Word {
        Word::Text {
            text: t.into(),
            typos: typos_forgiven(t.chars().count()),
        }
    }

    #[test]
    fn a_phone_number_in_any_format_is_one_number() {
        for q in [
            "+1 (555) 010-0042",
            "1.555.010.0042",
            "15550100042",
            "555 0100 042",
        ] {
            let digits = match &words(q)[..] {
                [Word::Digits(d)] => d.clone(),
                other => panic!("{q}: {other:?}"),
            };
            assert!("15550100042".contains(&digits), "{q}");
        }
    }

    #[test]
    fn words_are_folded_split_and_given_their_typos() {
        assert_eq!(
            words("Grâce  HOPPER, navy.mil 0042 Grace"),
            vec![
                text("grace"),
                text("hopper"),
                text("navy"),
                text("mil"),
                Word::Digits("0042".into())
            ]
        );
        assert_eq!(fold("Ærøskøbing Straße"), "aeroskobing strasse");
        assert_eq!(
            fold("Ștefan Nguyễn İstanbul Ёлка Ελλάδα Ŋŋ"),
            "stefan nguyen istanbul елка ελλαδα nn"
        );
        assert_eq!(
            (typos_forgiven(4), typos_forgiven(5), typos_forgiven(9)),
            (0, 1, 2)
        );
        assert_eq!(words(&"a ".repeat(20)).len(), 1);
        let many = (0..20)
            .map(|i| format!("w{i}x"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(words(&many).len(), MAX_WORDS);
    }

    #[test]
    fn edits_are_counted_as_levenshtein_does() {
        assert!(within_edits("hopper", "hoper", 1));
        assert!(within_edits("grace", "frace", 1));
        assert!(!within_edits("grace", "graec", 1), "a swap is two edits");
        assert!(within_edits("grace", "graec", 2));
        assert!(within_edits("washington", "washingtno", 2));
        assert!(!within_edits("grace", "gracefully", 2));
        assert!(within_edits("", "ab", 2) && !within_edits("", "abc", 2));
    }

    #[test]
    fn some_piece_survives_every_allowed_typo() {
        let word = "hopper";
        for typo in ["hoper", "hoppre", "xopper", "hoppex", "hopperx", "hpper"] {
            let survives = pieces(word, 1).iter().any(|p| typo.contains(p.as_str()));
            assert!(survives, "{typo}");
        }
        assert_eq!(pieces("washington", 2), ["was", "hin", "gton"]);
    }
}
