#!/usr/bin/env python3
"""Writes rules/forms/diseases.tsv, the list of every 指定難病 and 小慢 disease that nsdb can
write, from the Nanbyo Disease Ontology (NANDO, DBCLS, CC-BY 4.0) and the ministry's
概要・診断基準等 texts that come with it.

    python3 rules/tools/diseases.py /work/shared/data/nando > rules/forms/diseases.tsv

One line per disease, tab-separated (see rules/src/diseases.rs for the columns). The 診断のカテゴリー
choices and the 重症度 wording are taken from each criteria text as written; where a text states no
named categories the choices are 「診断基準を満たす／満たさない」 and the text's category paragraph is
the help. 告示番号 334–341 are not in NANDO: their names come from the sources named on their line
and are marked unverified where no stored source confirmed them.
"""
import json
import re
import sys
import unicodedata
from pathlib import Path

SEP = "｜"
LABELS = ["Definite", "Probable", "Possible", "Suspected", "確定診断", "確実例", "ほぼ確実例", "疑い例", "確診", "疑診"]

# 告示番号 334–341 (added from 2021 on; not in the NANDO snapshot).
LATER = [
    (334, "脳クレアチン欠乏症候群", "", "名称は保存資料で未確認(2021年追加分)。"),
    (335, "ネフロン癆", "", "名称は保存資料で未確認(2021年追加分)。"),
    (336, "家族性低βリポタンパク血症1（ホモ接合体）", "", "名称は保存資料で未確認(2021年追加分)。"),
    (337, "ホモシスチン尿症", "", "名称は保存資料で未確認(2021年追加分)。"),
    (338, "進行性家族性肝内胆汁うっ滞症", "", "名称は保存資料で未確認(2021年追加分)。"),
    (339, "MECP2重複症候群", "", "3疾病の追加(計341)は報道でのみ確認し、公式の出典は未確認。番号の割当ても未確認。"),
    (340, "線毛機能不全症候群（カルタゲナー症候群を含む）", "", "3疾病の追加(計341)は報道でのみ確認し、公式の出典は未確認。番号の割当ても未確認。"),
    (341, "TRPV4異常症", "", "3疾病の追加(計341)は報道でのみ確認し、公式の出典は未確認。番号の割当ても未確認。"),
]


def clean(s):
    return re.sub(r"\s+", " ", s.replace("\t", " ")).strip()


def paragraph_after(lines, start):
    out = []
    for line in lines[start + 1:]:
        t = line.strip()
        if not t:
            if out:
                break
            continue
        if t.startswith("＜") or t.startswith("○") or t.startswith("※"):
            break
        out.append(t)
    return clean(" ".join(out))


def severity_text(text):
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if re.match(r"^\s*[６6][．.]\s*重症度分類", line):
            p = paragraph_after(lines, i)
            if p:
                return p
    for i, line in enumerate(lines):
        if "＜重症度分類＞" in line:
            p = paragraph_after(lines, i)
            if p:
                return p
    return ""


def categories(text):
    lines = text.split("\n")
    section = ""
    for i, line in enumerate(lines):
        if "診断のカテゴリー" in line and (line.strip().startswith("＜") or line.strip().startswith("<") or re.match(r"^\s*\S?[（(]?\d*[)）]?\s*\S*診断のカテゴリー", line)):
            section = paragraph_after(lines, i)
            if section:
                break
    found = []
    for line in lines:
        t = line.strip().lstrip("・●○①②③④⑤（(1234567890１２３４５６７８９）)．. ")
        for lab in LABELS:
            if t.startswith(lab) and lab not in found:
                found.append(lab)
    return found, section[:400]


def patients(text):
    """The 患者数 the criteria text states (受給者証保持者数 etc.), or ""."""
    i = text.find("患者数")
    if i < 0:
        return ""
    seg = text[i:i + 120].translate(str.maketrans("０１２３４５６７８９，．", "0123456789,."))
    m = re.search(r"([0-9][0-9,]*(?:\.[0-9]+)?)\s*(万)?\s*人", seg)
    if not m:
        return ""
    # "２万人に１人" is a frequency, not a number of patients.
    if seg[m.end():].lstrip().startswith("に"):
        return ""
    n = float(m.group(1).replace(",", ""))
    if m.group(2):
        n *= 10000
    return str(int(n))


def narrow(s):
    """Full-width letters and digits and half-width katakana as the rest of the catalogue writes
    them (NFKC on those only: ＩｇＡ → IgA, １ｐ36 → 1p36, ･ → ・; full-width brackets stay), and
    no space inside a name (「α 1-」)."""
    s = "".join(unicodedata.normalize("NFKC", c) if c.isalnum() and ("\uff10" <= c <= "\uff5a" or "\uff61" <= c <= "\uff9f") or c == "\uff65" else c for c in s)
    return re.sub(r"(?<=[^\x00-\x7f]) (?=\S)|(?<=\S) (?=[^\x00-\x7f])", "", s)


def official_title(text, no):
    """The disease's name as the criteria text's first line states it (「229　肺胞蛋白症（自己免疫性
    又は先天性）」): the 告示 name with its qualifiers, which NANDO's name_ja drops."""
    first = text.split("\n", 1)[0].strip()
    num = first.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    m = re.match(r"^(\d+)[\s　]+(.+)$", num)
    if not m or int(m.group(1)) != no:
        return ""
    return narrow(clean(first[len(m.group(1)):].strip(" 　")))


def subtypes(entries, e):
    """The names of an entry's sub-types (ids "N-…"), as synonyms for the picker."""
    prefix = e["id"] + "-"
    return [clean(x["name_ja"]) for x in entries if x["id"].startswith(prefix)]


def abbreviations(core, *texts):
    """Latin abbreviations a text gives for the disease right after its name: 「重症筋無力症（MG）」,
    「筋萎縮性側索硬化症（amyotrophic lateral sclerosis：ALS）」, 「全身性エリテマトーデスsystemic
    lupus erythematosus (SLE)」. Only these are added as synonyms; none is made up."""
    if not core:
        return []
    pat = re.compile(re.escape(core) + r"[\s（(]*(?:[A-Za-z][A-Za-z \-']{2,60}?\s*[（(:：;；,，]\s*)?([A-Z][A-Za-z0-9]{1,7})\s*[）)]")
    out = []
    for t in texts:
        for m in pat.finditer(t or ""):
            a = m.group(1)
            if sum(c.isupper() for c in a) >= 2 and a not in out:
                out.append(a)
    return out


# NANDO synonyms that name another disease (data slips), left out: (name_ja, synonym, why).
WRONG_SYNONYMS = {
    ("ネイル・パテラ症候群", "aHUS"),      # aHUS is 非典型溶血性尿毒症症候群 (02-02-017)
    ("エプスタイン症候群", "AS"),          # AS is Alport syndrome, which its description compares it with
}


def uniq(xs, but=()):
    out = []
    for x in xs:
        if x and x not in out and x not in but:
            out.append(x)
    return out


# 小慢 diseases whose NANDO name is the same as another's; the 告示 tells them apart by a
# qualifier. The qualifier is chosen by NANDO's own sub-type of each entry (器質的 / 特発性).
SHOMAN_NAMES = {
    "256": ("成長ホルモン（GH）分泌不全性低身長症（脳の器質的原因によるものに限る。）",
            "NANDOの名称は05-04-006と同じ。限定の文言はNANDOの下位分類「器質的成長ホルモン分泌不全性低身長症」による(告示の文言は未確認)。"),
    "257": ("成長ホルモン（GH）分泌不全性低身長症（脳の器質的原因によるものを除く。）",
            "NANDOの名称は05-04-005と同じ。限定の文言はNANDOの下位分類「特発性成長ホルモン分泌不全性低身長症」による(告示の文言は未確認)。"),
}


def shoman_numbers(top):
    """Each 小慢 entry's (疾患群, 大分類, 番号): from its shouman.jp page address, which numbers the
    diseases of a 疾患群 in one series. Entries that share a page (NANDO gives 未分化神経外胚葉性腫瘍
    of both 1-5 and 1-6 the page 01_05_041) get the numbers of the series that no page has, within
    the 大分類 of the entry before them, in list order; those lines say the number is inferred."""
    pages = []
    for e in top:
        url = next((u for u in e.get("see_also", []) + e.get("references_in_translation", []) if "shouman.jp/disease/details/" in u), "")
        m = re.search(r"details/(\d\d)_(\d\d)_(\d\d\d)", url)
        pages.append(tuple(int(x) for x in m.groups()) if m else None)
    used = {p for p in pages if p}
    # The first number of each 大分類 of each 疾患群: a 大分類 runs up to the next one's first.
    starts = {}
    for g, c, n in used:
        starts[(g, c)] = min(n, starts.get((g, c), n))
    def span(g, c):
        begin = starts[(g, c)]
        later = [n for (gg, cc), n in starts.items() if gg == g and n > begin]
        end = min(later) - 1 if later else max(n for gg, cc, n in used if gg == g and cc == c)
        return begin, end
    taken = {(g, n) for g, c, n in used}
    seen = set()
    out = []
    for i, p in enumerate(pages):
        if p is None:
            out.append((None, ""))
            continue
        if p not in seen:
            seen.add(p)
            share = pages.count(p)
            out.append((p, f"shouman.jp の頁を他の{share - 1}疾病と共有しており、この番号がどの疾病のものかは一覧の順による(未確認)。" if share > 1 else ""))
            continue
        g = p[0]
        prev = out[i - 1][0]
        c = prev[1] if prev and prev[0] == g else p[1]
        begin, end = span(g, c)
        free = [n for n in range(begin, end + 1) if (g, n) not in taken]
        if not free:
            out.append((None, ""))
            continue
        n = free[0]
        taken.add((g, n))
        out.append(((g, c, n), f"番号は推定: shouman.jp の頁 {p[0]:02d}_{p[1]:02d}_{p[2]:03d} を他の疾病と共有しており、同じ大分類の空き番号を一覧の順に割り当てた(未確認)。"))
    return out


def main(nando):
    nando = Path(nando)
    nanbyo = json.loads((nando / "nanbyo.json").read_text())
    nclass = {c["id"]: c["name_ja"] for c in json.loads((nando / "nanbyo_class.json").read_text())}
    shoman = json.loads((nando / "shoman.json").read_text())
    sclass = {c["id"]: c["name_ja"] for c in json.loads((nando / "shoman_class.json").read_text())}
    print("# kind\tid\tnumber\tgroup\tname\tsynonyms\tcategories\tcategory_text\tseverity_text\tsource\tunverified\tpatients")
    print("# Generated by rules/tools/diseases.py from NANDO (DBCLS, CC-BY 4.0, https://nanbyodata.jp) and the ministry's 概要・診断基準等. Do not edit by hand.")
    for e in sorted((e for e in nanbyo if "-" not in e["id"]), key=lambda e: int(e["notification_no"])):
        no = int(e["notification_no"])
        f = nando / "criteria" / f"{no:03d}.txt"
        text = f.read_text() if f.exists() else ""
        cats, cat_text = categories(text) if text else ([], "")
        sev = severity_text(text) if text else ""
        docx = next((u for u in e.get("see_also", []) if "mhlw.go.jp" in u), "")
        unverified = [] if text else ["概要・診断基準等の本文なし(NANDOの資料に欠番)。"]
        nando_name = clean(e["name_ja"])
        name = (official_title(text, no) if text else "") or nando_name
        if text and not official_title(text, no):
            unverified.append("名称は概要・診断基準等の表題から取り出せず、NANDOの名称による。")
        core = re.sub(r"（.*", "", name)
        synonyms = uniq([nando_name] + [clean(x) for x in e.get("synonyms_ja", [])] + subtypes(nanbyo, e)
                        + [clean(x) for x in e.get("synonyms_en", [])] + abbreviations(core, text, e.get("description", "")), but=(name,))
        if text and not sev:
            unverified.append("重症度分類の文言を本文から取り出せなかった。")
        print("\t".join([
            "rinko", f"rinko-{no:03d}", str(no), nclass.get(e.get("class_id", ""), ""),
            name, SEP.join(synonyms),
            SEP.join(cats), cat_text, sev[:400],
            docx or e.get("is_defined_by", ""), " ".join(unverified), patients(text),
        ]))
    for no, name, src, note in LATER:
        print("\t".join(["rinko", f"rinko-{no:03d}", str(no), "", name, "", "", "", "", src, note + " 診断基準・重症度分類の本文は未収録。", ""]))
    top = [e for e in shoman if "-" not in e["id"]]
    shared_no = {}
    for e in top:
        key = (e["class_id"].split("-")[0], e["notification_no"])
        shared_no[key] = shared_no.get(key, 0) + 1
    for e, (num, note) in zip(top, shoman_numbers(top)):
        if num is None:
            print(f"iken entry {e['id']} has no shouman.jp number", file=sys.stderr)
            sys.exit(1)
        fid = f"iken-{num[0]:02d}-{num[1]:02d}-{num[2]:03d}"
        url = f"https://www.shouman.jp/disease/details/{num[0]:02d}_{num[1]:02d}_{num[2]:03d}/"
        group = e["class_id"].split("-")[0]
        nando_name = clean(e["name_ja"])
        name, name_note = SHOMAN_NAMES.get(e["id"], (narrow(nando_name), ""))
        synonyms = uniq([nando_name] + [clean(x) for x in e.get("synonyms_ja", [])] + subtypes(shoman, e)
                        + [clean(x) for x in e.get("synonyms_en", []) if (nando_name, x) not in WRONG_SYNONYMS]
                        + abbreviations(nando_name, e.get("description", "")), but=(name,))
        notes = [n for n in (note, name_note) if n]
        if shared_no[(group, e["notification_no"])] > 1:
            notes.append(f"告示番号{e['notification_no']}はNANDOで他の疾病と同じ(未確認)。")
        notes.append("疾病の状態の程度の本文はデータになく、医師の判断を記録する。")
        print("\t".join([
            "iken", fid, f"{group}-{e['notification_no']}",
            f"{sclass.get(group, '')}／{sclass.get(e['class_id'], '')}",
            name, SEP.join(synonyms),
            "", "", "", e.get("is_defined_by", "") or url,
            " ".join(notes), "",
        ]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/nando")
