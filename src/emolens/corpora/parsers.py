"""Corpus parsers: a folder of recordings → :class:`Manifest` plus the files skipped and why.

Parsers read labels and speakers only from what the corpus defines (file-name codes,
folder layout, metadata tables) and never guess: a file they cannot place is returned
in the skipped list with a reason. Supported layouts (``list_corpora()``):

``folder``
    ``root/<label>/**/*.{wav,flac,ogg,mp3}``. Speaker = the first folder below the
    label folder (``root/<label>/<speaker>/...``) if there is one, else the file-name
    prefix before the first ``_`` (``happy/spk3_001.wav`` → ``spk3``), else unknown.
    A :class:`CorpusWarning` reminds that speaker-independent splits are only honest
    if these are real speaker ids; use ``csv`` with a speaker column when unsure.
``csv``
    A CSV (``csv=``, or ``root`` itself if it is a file) with columns ``path,label``
    and optional ``speaker,gender,text,corpus``; relative paths resolve against the
    CSV's folder. A missing/empty speaker means unknown.
``ravdess``
    ``03-01-EE-II-SS-RR-AA.wav``: only audio-only (03) speech (01) files are used;
    speaker = actor ``AA``, odd actors male, even female; text = statement ``SS``.
``emodb``
    ``SSTTTEV.{wav,flac}``: speaker SS, sentence TTT (→ text), emotion letter E.
    ``root/metadata.csv`` (columns ``path`` and optional ``speaker,gender,text,emotion``)
    supplies gender/text when present and must agree with the name.
``cremad``
    ``1001_DFA_ANG_XX.wav``: speaker, sentence (→ text), emotion, level. Gender comes
    from ``root/VideoDemographics.csv`` (``ActorID,Sex``) if present.
``tess``
    ``OAF_back_angry.wav``: speaker OAF/YAF (both female), word (→ text), emotion;
    ``ps`` (pleasant surprise) → ``surprise``.
``savee``
    ``DC_a01.wav`` or ``DC/a01.wav``: speakers DC JE JK KL (male); codes a d f h n
    sa su (two-letter ``sa``/``su`` are sadness/surprise).
``ased``
    Amharic Speech Emotion Dataset: ``<NN><Emotion>/xn-SS-RR-GG-PP.flac`` with the
    emotion letter x (n neutral, f fear, h happy, s sad, a angry; any case) and folder
    number n, sentence SS (→ text), repetition RR, gender GG (01 female, 02 male),
    speaker PP. The speaker id is PP alone (the corpus README: five speakers carry both
    gender codes, labelling noise), gender from ``root/metadata.csv`` when present, else
    GG. A letter that disagrees with its folder is skipped.
``csu2022``
    ``<Emotion>/<Day n>/<k>.wav`` (thesis layout). The path has no speaker id, so a
    speaker map is required: ``root/speakers.csv`` or ``csv=`` with either
    ``path,speaker[,gender]`` (path relative to root) or ``day,first,last,speaker
    [,gender]`` (file numbers first..last of that day, every emotion). Without one the
    parser raises unless ``allow_unknown_speakers`` (then speaker = ``unknown`` and
    speaker-independent splits refuse the manifest).
``aihub``
    AI-Hub 감정 분류를 위한 대화 음성 데이터셋: audio ``<wav_id>.wav`` anywhere under
    root plus a metadata CSV (``csv=`` or the only ``*.csv`` in root; an xlsx must be
    saved as CSV first, UTF-8 or CP949) with columns ``wav_id`` (or ``path``, relative
    to root), ``emotion`` (or ``label``/``상황``; Korean or English), ``speaker`` (or
    ``speaker_id``/``화자``), optional ``gender``/``성별`` and ``text``/``발화문``.
    The AI-Hub sheets carry no speaker column: add one, or set
    ``allow_unknown_speakers`` (no speaker-independent splits then).
``nemo``
    nEMO (Polish): ``samples/<speaker>_<emotion>_<sentence>.{wav,ogg}`` (emotion words
    anger, fear, happiness, neutral, sadness, surprised). Gender and text come from the
    original ``root/data.tsv`` (``file_id, emotion, raw_text, normalized_text,
    speaker_id, gender, age``; speaker ids with stray spaces are stripped) or from
    ``root/metadata.csv`` (``path, speaker, gender, text, emotion``); a table row that
    disagrees with the file name is skipped.
``turev``
    TurEV-DB (Turkish single words): ``[Sound Source/]<Emotion>/<speaker>_<code>_<word>``
    with codes kz angry, sk calm, mt happy, hl sad; the code must agree with the
    emotion folder. The corpus says *calm*: map it to neutral explicitly
    (``--label-map turev:calm=neutral``) for a 4-class setup.
``casia``
    CASIA (Mandarin) ``<speaker>/<emotion>/<n>.{wav,ogg}`` (angry, fear, happy, neutral,
    sad, surprise; text = sentence number). **Evaluate only**: its provenance is
    unclear, so :data:`EVALUATE_ONLY_CORPORA` lists it and a model trained on it is
    refused by packaging (``emolens.training.package``).
"""

from __future__ import annotations

import csv as csvlib
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

from emolens.corpora.labels import is_known_label, normalize_label
from emolens.corpora.manifest import UNKNOWN_SPEAKER, Manifest, Utterance, probe_duration
from emolens.errors import AudioError, CorpusError

AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".mp3"})

Skipped = list[tuple[str, str]]
ParseResult = tuple[list[Utterance], Skipped]
Parser = Callable[[Path, "Path | None"], ParseResult]


class CorpusWarning(UserWarning):
    """A corpus was parsed, but something about it limits what the results mean."""


# --- helpers ---------------------------------------------------------------------------
def _audio_files(root: Path) -> list[Path]:
    """Every audio file below ``root`` (by extension, any case), sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def _read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV in UTF-8 (with or without BOM) or CP949 (Korean Excel)."""
    for encoding in ("utf-8-sig", "cp949"):
        try:
            with path.open(newline="", encoding=encoding) as fh:
                reader = csvlib.DictReader(fh)
                header = [h.strip() for h in (reader.fieldnames or [])]
                reader.fieldnames = header
                rows = [{k: (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
            return header, rows
        except UnicodeDecodeError:
            continue
    raise CorpusError(f"{path} is neither UTF-8 nor CP949 text; save it as UTF-8 CSV")


def _pick_column(header: list[str], candidates: Iterable[str]) -> str | None:
    """The first candidate column present in ``header`` (case-insensitive)."""
    lower = {h.lower(): h for h in header}
    for name in candidates:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


_GENDERS = {
    "male": "male", "m": "male", "man": "male", "남": "male", "남성": "male", "남자": "male",
    "female": "female", "f": "female", "woman": "female", "여": "female", "여성": "female",
    "여자": "female",
}


def _gender(raw: str | None) -> str | None:
    """``male``/``female`` from common spellings (English/Korean); other text lower-cased."""
    if not raw:
        return None
    return _GENDERS.get(raw.strip().lower(), raw.strip().lower())


def _dedupe(items: list[tuple[str, Utterance]], skipped: Skipped) -> list[Utterance]:
    """Keep the first utterance per key (e.g. same name as .wav and .flac); skip the rest."""
    seen: dict[str, str] = {}
    kept: list[Utterance] = []
    for key, utt in items:
        if key in seen:
            skipped.append((utt.path, f"duplicate of {seen[key]}"))
            continue
        seen[key] = utt.path
        kept.append(utt)
    return kept


def _label_or_skip(raw: str, path: str, skipped: Skipped, what: str = "emotion") -> str | None:
    if is_known_label(raw):
        return normalize_label(raw)
    skipped.append((path, f"unknown {what} {raw!r}"))
    return None


# --- folder / csv ----------------------------------------------------------------------
def parse_folder(root: Path, csv: Path | None = None) -> ParseResult:
    """``root/<label>/[<speaker>/...]<file>``; speaker from sub-folder or name prefix."""
    utts: list[Utterance] = []
    skipped: Skipped = []
    for f in _audio_files(root):
        parts = f.relative_to(root).parts
        if len(parts) < 2:
            skipped.append((str(f), "not inside a <label>/ folder"))
            continue
        label = _label_or_skip(parts[0], str(f), skipped, "label folder")
        if label is None:
            continue
        if len(parts) >= 3:
            speaker = parts[1]
        elif "_" in f.stem and f.stem.split("_", 1)[0]:
            speaker = f.stem.split("_", 1)[0]
        else:
            speaker = UNKNOWN_SPEAKER
        utts.append(Utterance(str(f), label, speaker, "folder"))
    if utts:
        warnings.warn(
            "folder corpus: speaker ids come from sub-folders or file-name prefixes; "
            "speaker-independent splits are only valid if these are real speakers "
            "(otherwise use the csv corpus with a speaker column)",
            CorpusWarning,
            stacklevel=3,
        )
    return utts, skipped


def parse_csv(root: Path, csv: Path | None = None) -> ParseResult:
    """A CSV with ``path,label[,speaker,gender,text,corpus]``; paths relative to the CSV."""
    table = csv if csv is not None else (root if root.is_file() else None)
    if table is None:
        raise CorpusError("corpus 'csv' needs the CSV file: pass csv=<file> (--csv) or the file as root")
    header, rows = _read_table(table)
    missing = [c for c in ("path", "label") if c not in header]
    if missing:
        raise CorpusError(
            f"{table} lacks column(s) {', '.join(missing)}; it needs path,label "
            "(optional: speaker,gender,text,corpus)"
        )
    base = table.resolve().parent
    utts: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for line, row in enumerate(rows, start=2):
        if not row.get("path"):
            skipped.append((f"{table}:{line}", "empty path"))
            continue
        path = Path(row["path"])
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            skipped.append((str(path), "file not found"))
            continue
        label = _label_or_skip(row.get("label", ""), str(path), skipped, "label")
        if label is None:
            continue
        utt = Utterance(
            str(path), label, row.get("speaker") or UNKNOWN_SPEAKER, row.get("corpus") or "csv",
            gender=_gender(row.get("gender")), text=row.get("text") or None,
        )
        utts.append((str(path), utt))
    return _dedupe(utts, skipped), skipped


# --- name-coded corpora ----------------------------------------------------------------
RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fear", "07": "disgust", "08": "surprise",
}
_RAVDESS_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(0[12])-(0[12])-(0[12])-(\d{2})$")


def parse_ravdess(root: Path, csv: Path | None = None) -> ParseResult:
    """RAVDESS audio-only speech: ``03-01-EE-II-SS-RR-AA``."""
    items: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for f in _audio_files(root):
        m = _RAVDESS_RE.match(f.stem)
        if not m:
            skipped.append((str(f), "unparseable name (expected 03-01-EE-II-SS-RR-AA)"))
            continue
        modality, channel, emotion, _, statement, _, actor = m.groups()
        if modality != "03":
            skipped.append((str(f), f"modality {modality} is not audio-only (03)"))
        elif channel != "01":
            skipped.append((str(f), f"vocal channel {channel} is not speech (01)"))
        elif emotion not in RAVDESS_EMOTIONS:
            skipped.append((str(f), f"unknown emotion code {emotion!r}"))
        elif actor == "00":
            skipped.append((str(f), "actor 00 does not exist"))
        else:
            gender = "male" if int(actor) % 2 else "female"
            utt = Utterance(str(f), RAVDESS_EMOTIONS[emotion], actor, "ravdess", gender=gender, text=statement)
            items.append((f.stem, utt))
    return _dedupe(items, skipped), skipped


EMODB_EMOTIONS = {
    "W": "angry", "L": "boredom", "E": "disgust", "A": "fear",
    "F": "happy", "T": "sad", "N": "neutral",
}
EMODB_GENDERS = {
    "03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
    "12": "male", "13": "female", "14": "female", "15": "male", "16": "female",
}
_EMODB_RE = re.compile(r"^(\d{2})([ab]\d{2})([A-Z])([a-z])$")


def _emodb_metadata(root: Path) -> dict[str, dict[str, str]]:
    """``root/metadata.csv`` rows keyed by file stem, or {} if there is none."""
    table = root / "metadata.csv"
    if not table.is_file():
        return {}
    header, rows = _read_table(table)
    if "path" not in header:
        raise CorpusError(f"{table} lacks a 'path' column; fix it or remove the file")
    return {Path(r["path"]).stem: r for r in rows if r.get("path")}


def _emodb_conflict(meta: dict[str, str], speaker: str, label: str) -> str | None:
    """Why metadata.csv disagrees with the file name, or None."""
    if meta.get("speaker") and meta["speaker"] != speaker:
        return f"metadata.csv says speaker {meta['speaker']!r}, name says {speaker!r}"
    emotion = meta.get("emotion")
    if emotion and (not is_known_label(emotion) or normalize_label(emotion) != label):
        return f"metadata.csv says emotion {emotion!r}, name says {label!r}"
    return None


def parse_emodb(root: Path, csv: Path | None = None) -> ParseResult:
    """EmoDB ``SSTTTEV``; gender/text from ``metadata.csv`` when present."""
    metadata = _emodb_metadata(root)
    items: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for f in _audio_files(root):
        m = _EMODB_RE.match(f.stem)
        if not m:
            skipped.append((str(f), "unparseable name (expected SSTTTEV, e.g. 03a01Wa)"))
            continue
        speaker, sentence, code, _ = m.groups()
        if code not in EMODB_EMOTIONS:
            skipped.append((str(f), f"unknown emotion code {code!r}"))
            continue
        if speaker not in EMODB_GENDERS:
            skipped.append((str(f), f"unknown EmoDB speaker {speaker!r}"))
            continue
        label = EMODB_EMOTIONS[code]
        meta = metadata.get(f.stem, {})
        conflict = _emodb_conflict(meta, speaker, label)
        if conflict:
            skipped.append((str(f), conflict))
            continue
        gender = _gender(meta.get("gender")) or EMODB_GENDERS[speaker]
        utt = Utterance(str(f), label, speaker, "emodb", gender=gender, text=meta.get("text") or sentence)
        items.append((f.stem, utt))
    return _dedupe(items, skipped), skipped


CREMAD_EMOTIONS = {
    "ANG": "angry", "DIS": "disgust", "FEA": "fear",
    "HAP": "happy", "NEU": "neutral", "SAD": "sad",
}
CREMAD_LEVELS = frozenset({"LO", "MD", "HI", "XX"})
_CREMAD_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def _cremad_genders(root: Path) -> dict[str, str]:
    """ActorID → gender from ``root/VideoDemographics.csv``, or {}."""
    table = root / "VideoDemographics.csv"
    if not table.is_file():
        return {}
    header, rows = _read_table(table)
    if "ActorID" not in header or "Sex" not in header:
        raise CorpusError(f"{table} lacks ActorID/Sex columns; fix it or remove the file")
    return {r["ActorID"]: _gender(r["Sex"]) for r in rows if r.get("ActorID") and r.get("Sex")}  # type: ignore[misc]


def parse_cremad(root: Path, csv: Path | None = None) -> ParseResult:
    """CREMA-D ``1001_DFA_ANG_XX``."""
    genders = _cremad_genders(root)
    items: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for f in _audio_files(root):
        m = _CREMAD_RE.match(f.stem)
        if not m or m.group(4) not in CREMAD_LEVELS:
            skipped.append((str(f), "unparseable name (expected 1001_DFA_ANG_XX)"))
            continue
        speaker, sentence, code, _ = m.groups()
        if code not in CREMAD_EMOTIONS:
            skipped.append((str(f), f"unknown emotion code {code!r}"))
            continue
        utt = Utterance(str(f), CREMAD_EMOTIONS[code], speaker, "cremad", gender=genders.get(speaker), text=sentence)
        items.append((f.stem, utt))
    return _dedupe(items, skipped), skipped


TESS_SPEAKERS = frozenset({"OAF", "YAF"})
TESS_EMOTIONS = {
    "angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
    "neutral": "neutral", "ps": "surprise", "sad": "sad",
}


def parse_tess(root: Path, csv: Path | None = None) -> ParseResult:
    """TESS ``OAF_back_angry``; both speakers female."""
    items: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for f in _audio_files(root):
        parts = f.stem.split("_")
        if len(parts) != 3 or not all(parts):
            skipped.append((str(f), "unparseable name (expected OAF_word_emotion)"))
            continue
        speaker, word, code = parts[0].upper(), parts[1].lower(), parts[2].lower()
        if speaker not in TESS_SPEAKERS:
            skipped.append((str(f), f"unknown TESS speaker {parts[0]!r} (expected OAF or YAF)"))
        elif code not in TESS_EMOTIONS:
            skipped.append((str(f), f"unknown emotion code {parts[2]!r}"))
        else:
            utt = Utterance(str(f), TESS_EMOTIONS[code], speaker, "tess", gender="female", text=word)
            items.append((f.stem.lower(), utt))
    return _dedupe(items, skipped), skipped


SAVEE_SPEAKERS = frozenset({"DC", "JE", "JK", "KL"})
SAVEE_EMOTIONS = {
    "a": "angry", "d": "disgust", "f": "fear", "h": "happy",
    "n": "neutral", "sa": "sad", "su": "surprise",
}
_SAVEE_RE = re.compile(r"^(?:([A-Za-z]{2})_)?([a-z]{1,2})(\d{2})$")


def parse_savee(root: Path, csv: Path | None = None) -> ParseResult:
    """SAVEE ``DC_a01`` or ``DC/a01``; all speakers male."""
    items: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for f in _audio_files(root):
        m = _SAVEE_RE.match(f.stem)
        if not m:
            skipped.append((str(f), "unparseable name (expected DC_a01 or DC/a01)"))
            continue
        prefix, code, number = m.groups()
        speaker = (prefix or f.parent.name).upper()
        if speaker not in SAVEE_SPEAKERS:
            skipped.append((str(f), f"unknown SAVEE speaker {speaker!r} (expected DC, JE, JK or KL)"))
        elif code not in SAVEE_EMOTIONS:
            skipped.append((str(f), f"unknown emotion code {code!r}"))
        else:
            utt = Utterance(str(f), SAVEE_EMOTIONS[code], speaker, "savee", gender="male")
            items.append((f"{speaker}_{code}{number}", utt))
    return _dedupe(items, skipped), skipped


# --- CSU 2022 --------------------------------------------------------------------------
CSU2022_EMOTIONS = frozenset({"happy", "neutral", "angry", "sad", "chagrin", "disgust", "fear", "surprise"})
_DAY_RE = re.compile(r"^day\s*_?(\d+)$", re.IGNORECASE)


def _csu_speaker_map(table: Path) -> Callable[[str, int, int], tuple[str, str | None] | None]:
    """A lookup (relative path, day, k) → (speaker, gender) from a speakers CSV."""
    header, rows = _read_table(table)
    if "speaker" in header and "path" in header:
        by_path = {r["path"].replace("\\", "/"): (r["speaker"], _gender(r.get("gender"))) for r in rows if r.get("speaker")}
        return lambda rel, day, k: by_path.get(rel)
    if "speaker" in header and {"day", "first", "last"} <= set(header):
        ranges: list[tuple[int, int, int, str, str | None]] = []
        for line, r in enumerate(rows, start=2):
            try:
                day, first, last = int(r["day"]), int(r["first"]), int(r["last"])
            except ValueError:
                raise CorpusError(f"{table} line {line}: day/first/last must be integers") from None
            for d, a, b, spk, _ in ranges:
                if d == day and a <= last and first <= b:
                    raise CorpusError(f"{table} line {line}: range {first}-{last} of day {day} overlaps speaker {spk}")
            ranges.append((day, first, last, r["speaker"], _gender(r.get("gender"))))

        def lookup(rel: str, day: int, k: int) -> tuple[str, str | None] | None:
            for d, a, b, spk, gender in ranges:
                if d == day and a <= k <= b:
                    return spk, gender
            return None

        return lookup
    raise CorpusError(
        f"{table} needs columns path,speaker or day,first,last,speaker (optional gender); "
        f"it has {','.join(header)}"
    )


def parse_csu2022(root: Path, csv: Path | None = None) -> ParseResult:
    """CSU 2022 ``<Emotion>/<Day n>/<k>.wav`` with a speaker map (see module docs)."""
    table = csv if csv is not None else root / "speakers.csv"
    lookup = _csu_speaker_map(table) if table.is_file() else None
    utts: list[Utterance] = []
    skipped: Skipped = []
    for f in _audio_files(root):
        rel = f.relative_to(root)
        parts = rel.parts
        day = _DAY_RE.match(parts[1]) if len(parts) == 3 else None
        if day is None or not f.stem.isdigit():
            skipped.append((str(f), "not <Emotion>/<Day n>/<number>.wav"))
            continue
        label = normalize_label(parts[0]) if is_known_label(parts[0]) else None
        if label not in CSU2022_EMOTIONS:
            skipped.append((str(f), f"unknown emotion folder {parts[0]!r}"))
            continue
        speaker, gender = UNKNOWN_SPEAKER, None
        if lookup is not None:
            found = lookup(rel.as_posix(), int(day.group(1)), int(f.stem))
            if found is None:
                skipped.append((str(f), f"not in speaker map {table.name}"))
                continue
            speaker, gender = found
        utts.append(Utterance(str(f), label, speaker, "csu2022", gender=gender))
    return utts, skipped


# --- AI-Hub ----------------------------------------------------------------------------
def _aihub_table(root: Path, csv: Path | None) -> Path:
    if csv is not None:
        return csv
    found = sorted(root.glob("*.csv"))
    if len(found) != 1:
        raise CorpusError(
            f"aihub needs its metadata CSV: pass csv=<file> (--csv); found {len(found)} *.csv in {root}"
        )
    return found[0]


def parse_aihub(root: Path, csv: Path | None = None) -> ParseResult:
    """AI-Hub emotion set: ``<wav_id>.wav`` under root plus a metadata CSV (see module docs)."""
    table = _aihub_table(root, csv)
    header, rows = _read_table(table)
    id_col = _pick_column(header, ("wav_id", "path"))
    emo_col = _pick_column(header, ("emotion", "label", "상황"))
    if id_col is None or emo_col is None:
        raise CorpusError(
            f"{table} needs a wav_id (or path) column and an emotion (or label/상황) column; "
            f"it has {','.join(header)}"
        )
    spk_col = _pick_column(header, ("speaker", "speaker_id", "화자"))
    gender_col = _pick_column(header, ("gender", "성별"))
    text_col = _pick_column(header, ("text", "발화문"))
    by_stem: dict[str, list[Path]] = {}
    if id_col.lower() == "wav_id":
        for f in _audio_files(root):
            by_stem.setdefault(f.stem, []).append(f)
    items: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for line, row in enumerate(rows, start=2):
        ref = row.get(id_col, "")
        if not ref:
            skipped.append((f"{table}:{line}", f"empty {id_col}"))
            continue
        if id_col.lower() == "wav_id":
            matches = by_stem.get(ref, [])
            if len(matches) != 1:
                why = "no audio file" if not matches else f"{len(matches)} audio files"
                skipped.append((str(root / ref), f"{why} named {ref}.* under root"))
                continue
            path = matches[0]
        else:
            path = Path(ref) if Path(ref).is_absolute() else root / ref
            if not path.is_file():
                skipped.append((str(path), "file not found"))
                continue
        label = _label_or_skip(row.get(emo_col, ""), str(path), skipped)
        if label is None:
            continue
        speaker = (row.get(spk_col, "") if spk_col else "") or UNKNOWN_SPEAKER
        utt = Utterance(
            str(path), label, speaker, "aihub",
            gender=_gender(row.get(gender_col)) if gender_col else None,
            text=(row.get(text_col) or None) if text_col else None,
        )
        items.append((str(path), utt))
    return _dedupe(items, skipped), skipped


ASED_EMOTIONS = {"n": "neutral", "f": "fear", "h": "happy", "s": "sad", "a": "angry"}
ASED_FOLDERS = {"01": "n", "02": "f", "03": "h", "04": "s", "05": "a"}
_ASED_RE = re.compile(r"^([nfhsa])([1-5])-(\d{2})-(\d{2})-(0[12])-(\d{2})$", re.IGNORECASE)


def parse_ased(root: Path, csv: Path | None = None) -> ParseResult:
    """ASED ``xn-SS-RR-GG-PP``; speaker PP, gender from ``metadata.csv`` when present."""
    meta: dict[str, dict[str, str]] = {}
    if (root / "metadata.csv").is_file():
        _, rows = _read_table(root / "metadata.csv")
        meta = {Path(r["path"]).stem.lower(): r for r in rows if r.get("path")}
    items: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for f in _audio_files(root):
        m = _ASED_RE.match(f.stem)
        if not m:
            skipped.append((str(f), "unparseable name (expected xn-SS-RR-GG-PP, e.g. a5-01-01-02-07)"))
            continue
        letter, number, sentence, _, gcode, speaker = m.groups()
        letter = letter.lower()
        if ASED_FOLDERS.get(f"0{number}") != letter:
            skipped.append((str(f), f"emotion letter {letter!r} does not match its number {number!r}"))
            continue
        folder = f.parent.name[:2]
        if folder in ASED_FOLDERS and ASED_FOLDERS[folder] != letter:
            skipped.append((str(f), f"emotion letter {letter!r} disagrees with folder {f.parent.name!r}"))
            continue
        gender = _gender(meta.get(f.stem.lower(), {}).get("gender")) or ("female" if gcode == "01" else "male")
        utt = Utterance(str(f), ASED_EMOTIONS[letter], speaker, "ased", gender=gender, text=sentence)
        items.append((f.stem.lower(), utt))
    return _dedupe(items, skipped), skipped


# --- nEMO, TurEV-DB, CASIA -------------------------------------------------------------
_NEMO_RE = re.compile(r"^([A-Za-z]+\d*)_([a-z]+)_(\d+)$")
NEMO_EMOTIONS = {"anger": "angry", "fear": "fear", "happiness": "happy", "neutral": "neutral",
                 "sadness": "sad", "surprised": "surprise"}


def _nemo_table(root: Path) -> dict[str, dict[str, str]]:
    """Rows of ``data.tsv`` (original) or ``metadata.csv`` (this folder) keyed by file stem,
    each as ``{speaker, gender, text, emotion}``; {} when neither exists."""
    tsv, meta = root / "data.tsv", root / "metadata.csv"
    out: dict[str, dict[str, str]] = {}
    if tsv.is_file():
        with tsv.open(newline="", encoding="utf-8-sig") as fh:
            reader = csvlib.DictReader(fh, delimiter="\t")
            reader.fieldnames = [h.strip() for h in (reader.fieldnames or [])]
            if "file_id" not in reader.fieldnames:
                raise CorpusError(f"{tsv} lacks a 'file_id' column; it is not nEMO's data.tsv")
            for r in reader:
                r = {k: (v or "").strip() for k, v in r.items() if k is not None}
                out[Path(r["file_id"]).stem] = {"speaker": r.get("speaker_id", ""), "gender": r.get("gender", ""),
                                                "text": r.get("normalized_text") or r.get("raw_text", ""),
                                                "emotion": r.get("emotion", "")}
    elif meta.is_file():
        header, rows = _read_table(meta)
        if "path" not in header:
            raise CorpusError(f"{meta} lacks a 'path' column; fix it or remove the file")
        out = {Path(r["path"]).stem: r for r in rows if r.get("path")}
    return out


def parse_nemo(root: Path, csv: Path | None = None) -> ParseResult:
    """nEMO ``<speaker>_<emotion>_<sentence>``; gender/text from data.tsv or metadata.csv."""
    table = _nemo_table(root)
    items: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for f in _audio_files(root):
        m = _NEMO_RE.match(f.stem)
        if not m or m.group(2) not in NEMO_EMOTIONS:
            skipped.append((str(f), "unparseable name (expected SPEAKER_emotion_N, e.g. SB0_anger_12)"))
            continue
        speaker, word, _ = m.groups()
        label = NEMO_EMOTIONS[word]
        row = table.get(f.stem, {})
        if row.get("speaker") and row["speaker"] != speaker:
            skipped.append((str(f), f"table says speaker {row['speaker']!r}, name says {speaker!r}"))
            continue
        emo = row.get("emotion")
        if emo and (not is_known_label(emo) or normalize_label(emo) != label):
            skipped.append((str(f), f"table says emotion {emo!r}, name says {label!r}"))
            continue
        utt = Utterance(str(f), label, speaker, "nemo", gender=_gender(row.get("gender")), text=row.get("text") or None)
        items.append((f.stem, utt))
    return _dedupe(items, skipped), skipped


TUREV_CODES = {"kz": "angry", "sk": "calm", "mt": "happy", "hl": "sad"}
_TUREV_RE = re.compile(r"^(\d+)_([a-z]{2})_(.+)$")


def parse_turev(root: Path, csv: Path | None = None) -> ParseResult:
    """TurEV-DB ``[Sound Source/]<Emotion>/<speaker>_<code>_<word>``; label = the corpus's word."""
    base = root / "Sound Source" if (root / "Sound Source").is_dir() else root
    items: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for f in _audio_files(base):
        m = _TUREV_RE.match(f.stem)
        if not m or m.group(2) not in TUREV_CODES:
            skipped.append((str(f), "unparseable name (expected SPEAKER_code_word, code kz/sk/mt/hl)"))
            continue
        speaker, code, word = m.groups()
        label = TUREV_CODES[code]
        folder = f.parent.name
        if not is_known_label(folder) or normalize_label(folder) != label:
            skipped.append((str(f), f"code {code!r} ({label}) disagrees with folder {folder!r}"))
            continue
        items.append((f"{folder}/{f.stem}", Utterance(str(f), label, speaker, "turev", text=word)))
    return _dedupe(items, skipped), skipped


CASIA_EMOTIONS = frozenset({"angry", "fear", "happy", "neutral", "sad", "surprise"})
CASIA_GENDERS = {"liuchanhg": "female", "zhaoquanyin": "female", "wangzhe": "male", "zhaozuoxiang": "male"}


def parse_casia(root: Path, csv: Path | None = None) -> ParseResult:
    """CASIA ``<speaker>/<emotion>/<n>``: evaluate only (see :data:`EVALUATE_ONLY_CORPORA`)."""
    items: list[tuple[str, Utterance]] = []
    skipped: Skipped = []
    for f in _audio_files(root):
        parts = f.relative_to(root).parts
        if len(parts) < 3 or not f.stem.isdigit():
            skipped.append((str(f), "not <speaker>/<emotion>/<number>"))
            continue
        speaker, emotion = parts[-3], parts[-2]
        label = normalize_label(emotion) if is_known_label(emotion) else None
        if label not in CASIA_EMOTIONS:
            skipped.append((str(f), f"unknown emotion folder {emotion!r} (CASIA: {', '.join(sorted(CASIA_EMOTIONS))})"))
            continue
        utt = Utterance(str(f), label, speaker, "casia", gender=CASIA_GENDERS.get(speaker.lower()), text=f.stem)
        items.append((f"{speaker}/{emotion}/{f.stem}", utt))
    return _dedupe(items, skipped), skipped


#: Corpora that may be evaluated on but never trained into a shipped or published model.
EVALUATE_ONLY_CORPORA: frozenset[str] = frozenset({"casia"})


# --- registry --------------------------------------------------------------------------
CORPORA: dict[str, Parser] = {
    "ased": parse_ased,
    "aihub": parse_aihub,
    "casia": parse_casia,
    "cremad": parse_cremad,
    "csu2022": parse_csu2022,
    "csv": parse_csv,
    "emodb": parse_emodb,
    "folder": parse_folder,
    "nemo": parse_nemo,
    "ravdess": parse_ravdess,
    "savee": parse_savee,
    "tess": parse_tess,
    "turev": parse_turev,
}

_UNKNOWN_SPEAKER_HINTS = {
    "csu2022": "CSU 2022 paths (<Emotion>/<Day n>/<k>.wav) carry no speaker id; put a speakers.csv "
    "(path,speaker or day,first,last,speaker) in the root or pass it as csv=",
    "aihub": "the AI-Hub metadata CSV has no speaker column (or empty cells); add a 'speaker' column",
    "csv": "the CSV has no speaker column (or empty cells); add a 'speaker' column",
    "folder": "some files have neither a speaker sub-folder nor a <speaker>_ name prefix; "
    "use root/<label>/<speaker>/ folders",
}


def list_corpora() -> list[str]:
    """Names accepted by :func:`build_manifest`."""
    return sorted(CORPORA)


def _check_speakers(corpus: str, utts: list[Utterance], allow_unknown: bool) -> None:
    unknown = sum(u.speaker == UNKNOWN_SPEAKER for u in utts)
    if unknown and not allow_unknown:
        hint = _UNKNOWN_SPEAKER_HINTS.get(corpus, "give speaker ids")
        raise CorpusError(
            f"{unknown} of {len(utts)} {corpus} files have no speaker id: {hint}; or set "
            "allow_unknown_speakers (--allow-unknown-speakers) and give up speaker-independent splits"
        )


def _with_durations(utts: list[Utterance], skipped: Skipped) -> list[Utterance]:
    """Fill durations from file headers; unreadable files move to ``skipped``."""
    kept: list[Utterance] = []
    for utt in utts:
        try:
            kept.append(Utterance(utt.path, utt.label, utt.speaker, utt.corpus,
                                  probe_duration(utt.path), utt.gender, utt.text))
        except AudioError as exc:
            skipped.append((utt.path, f"unreadable audio ({exc.__cause__ or exc})"))
    return kept


def build_manifest(
    corpus: str,
    root: str | Path,
    *,
    csv: str | Path | None = None,
    allow_unknown_speakers: bool = False,
) -> tuple[Manifest, list[tuple[str, str]]]:
    """Parse a corpus into a Manifest (sorted by path, durations filled) and the skipped files.

    Raises CorpusError for an unknown corpus name, a missing root/CSV, files without a
    speaker id (unless ``allow_unknown_speakers``) or when nothing usable is found.
    """
    name = corpus.strip().lower()
    if name not in CORPORA:
        raise CorpusError(f"unknown corpus {corpus!r}; choose one of {', '.join(list_corpora())}")
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise CorpusError(f"corpus root {root_path} not found; pass the folder that holds the {name} files")
    csv_path = None if csv is None else Path(csv).expanduser().resolve()
    if csv_path is not None and not csv_path.is_file():
        raise CorpusError(f"CSV {csv_path} not found; check the --csv path")
    if name != "csv" and not root_path.is_dir():
        raise CorpusError(f"corpus root {root_path} is not a folder; pass the folder that holds the {name} files")
    utts, skipped = CORPORA[name](root_path.resolve(), csv_path)
    _check_speakers(name, utts, allow_unknown_speakers)
    utts = _with_durations(utts, skipped)
    if not utts:
        example = f"; e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise CorpusError(
            f"no usable {name} audio under {root_path} ({len(skipped)} skipped{example}); "
            "check the root folder and corpus name"
        )
    return Manifest(sorted(utts, key=lambda u: u.path)), sorted(skipped)
