"""The texts of the local golden set, written for this project (nothing copied from elsewhere).

Kept apart from ``make_golden.py`` so the test suite can rebuild the list without the original
BytePiece and check that the committed file was made from exactly these texts. Everything here
must be deterministic across Python versions: ``random.Random(int)`` with ``random()``,
``randrange`` and ``choice`` only, and characters from blocks assigned long ago (an unassigned
code point could gain a decomposition in a later Unicode version and change the NFC form).
"""

from __future__ import annotations

import random

SEED = 20240914

ZH_LINES = [
    "今天早上下了一场小雨，路边的梧桐叶落了一地。",
    "我们把分词器的词表从八千扩大到三万二千，压缩率提高了不少。",
    "这个函数在输入为空字符串时应该返回一个空列表，而不是抛出异常。",
    "老王在楼下开了一家面馆，牛肉面十八块一碗，加蛋另算。",
    "训练语料越大，统计出来的字节片段就越可靠，但内存占用也随之上升。",
    "请在周五之前把测试报告发给我，谢谢！",
    "他说：“明天见。”然后转身走进了地铁站。",
    "《西游记》里，孙悟空一个筋斗能翻十万八千里。",
    "数据显示，第三季度的用户增长率为百分之十二点五。",
    "如果维特比算法遇到得分完全相同的两条路径，就需要一个确定的规则来选择其中之一。",
    "小明问：为什么天空是蓝色的？老师笑了笑，没有马上回答。",
    "这台服务器有两个核心和二十四GB内存，同时有六位工程师在上面工作。",
    "春眠不觉晓——这句诗几乎每个孩子都会背。",
    "把文本先做NFC规范化，再按换行符切块，每一块单独分词。",
    "咖啡凉了，窗外的灯一盏一盏亮起来。",
    "编码和解码必须互为逆运算，否则模型训练时会看到错误的数据。",
    "我们的村子在山脚下，一条小河从村东头流过。",
    "下载速度只有每秒两百KB，估计要等一个小时。",
    "哈哈哈哈哈，这个笑话太冷了。",
    "的的的的的的的的",
    "一二三四五六七八九十百千万亿",
    "零、壹、贰、叁、肆、伍、陆、柒、捌、玖、拾",
    "注意：本文中的所有示例都可以直接复制运行。",
    "长江、黄河、珠江、淮河，这四条河流经过的省份加起来超过二十个。",
    "晚饭吃什么？饺子、米饭还是面条？",
    "他一边敲键盘一边嘟囔：“又是这个段错误……”",
]

ZH_PARAGRAPHS = [
    "第一章 起步\n\n清晨五点，城市还没有醒来。\n她背着书包走出家门，街上只有扫地的环卫工人。\n",
    "问题描述：\n1. 打开设置页面；\n2. 点击“保存”；\n3. 页面卡住不动。\n期望结果：提示保存成功。\n",
    "　　首行缩进用的是两个全角空格。\n　　第二段也一样。",
    "甲：你吃了吗？\n乙：吃了，你呢？\n甲：还没呢。\n\n\n",
]

EN_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "hello world",
    "Hello, World!",
    "It was the coldest winter anyone in the valley could remember.",
    "Tokenizers split text into pieces; a larger vocabulary means fewer, longer pieces.",
    "Please don't forget to bring the charger -- the battery lasts about two hours.",
    "She said, \"I'll be there at 7:30 p.m. sharp,\" and hung up.",
    "In 1969, two astronauts walked on the Moon while a third orbited above.",
    "The results (see Table 3) are within 0.5% of the baseline.",
    "e.g., i.e., etc., vs., Mr. Smith, Dr. Jones, U.S.A.",
    "A rolling stone gathers no moss, but a sitting one gathers plenty.",
    "Error: file not found. Did you mean 'config.yaml'?",
    "THIS LINE IS WRITTEN ENTIRELY IN CAPITAL LETTERS FOR NO GOOD REASON.",
    "camelCaseIdentifiers and snake_case_identifiers and kebab-case-identifiers",
    "https://example.com/path/to/page?query=1&lang=en#section-2",
    "user.name+tag@example.org",
    "  leading spaces, trailing spaces  ",
    "tab\tseparated\tvalues\there",
    "Numbers: 0 1 12 123 1234 12345 3.14159 2.71828 -42 +7 1e-9 0xFF 0b1010",
    "Dates: 2023-01-31, 31/01/2023, Jan 31st 2023, 10:45:00Z",
    "Mississippi, bookkeeper, committee, aaaaargh, zzz",
    "naïve café résumé coöperate façade jalapeño",
    "The end.",
]

EN_PARAGRAPHS = [
    "Dear team,\n\nThe build is green again. Thanks to everyone who helped.\n\nBest,\nAnna\n",
    "Step 1: unpack the archive.\nStep 2: run the installer.\nStep 3: restart.\n",
    "Q: Why do we normalize text?\nA: So that visually identical strings get the same tokens.\n\n",
]

CODE_SNIPPETS = [
    "def add(a, b):\n    return a + b\n",
    "import numpy as np\nimport numpy.typing as npt\n\nx = np.zeros((3, 4), dtype=np.float64)\n",
    "class Point:\n    def __init__(self, x: float, y: float) -> None:\n        self.x = x\n        self.y = y\n\n"
    "    def __repr__(self) -> str:\n        return f\"Point({self.x}, {self.y})\"\n",
    "for i in range(10):\n\tif i % 2 == 0:\n\t\tprint(i)\n",
    "#include <stdio.h>\n\nint main(void) {\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
    "const sum = (xs) => xs.reduce((acc, x) => acc + x, 0);\nconsole.log(sum([1, 2, 3]));\n",
    "SELECT name, COUNT(*) AS n\nFROM users\nWHERE age >= 18\nGROUP BY name\nORDER BY n DESC;\n",
    "#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l \"$f\"\ndone\n",
    "{\n  \"name\": \"bytepiece\",\n  \"version\": \"0.1.0\",\n  \"tags\": [\"tokenizer\", \"unigram\"]\n}\n",
    "all: build\n\nbuild:\n\tgcc -O2 -o app main.c\n\nclean:\n\trm -f app\n",
    "    # an indented comment line\n        deeper = {\"k\": [1, 2, {\"v\": None}]}\n",
    "if (a != b && c <= d || !e) { x += 1; y -= 2; z *= 3; w /= 4; }",
    "fn main() {\n    let v: Vec<u8> = vec![0xde, 0xad, 0xbe, 0xef];\n    println!(\"{:?}\", v);\n}\n",
    "<html>\n  <body>\n    <p class=\"note\">Hi &amp; bye</p>\n  </body>\n</html>\n",
    "x = [i ** 2 for i in range(100) if i % 3]\ny = {k: v for k, v in zip('abc', 'xyz')}\n",
    "/* block comment */ // line comment\n-- sql comment\n; lisp comment\n% tex comment\n",
    "    return self._cache.setdefault(key, compute(key))  # 缓存结果\n",
    "print(\"你好，世界\")  # greet in Chinese\n",
]

MIXED_LINES = [
    "用Python写一个hello world只需要一行：print('hello world')。",
    "BytePiece的词表大小是32000，其中前3个id保留给<pad>、<bos>和<eos>。",
    "这个bug在v0.6.3里已经修复了，请升级到最新版本。",
    "我们用numpy的np.log计算分数，得分相等时选择更长的那个片段。",
    "今日はいい天気ですね。散歩に行きましょう。",
    "カタカナとひらがなと漢字が混ざった文章です。",
    "안녕하세요. 오늘 회의는 세 시에 시작합니다.",
    "Привет! Как дела? Сегодня мы тестируем токенизатор.",
    "Καλημέρα σας. Η γλώσσα αυτή έχει τόνους: ά έ ή ί ό ύ ώ.",
    "مرحبا بالعالم. هذا نص تجريبي باللغة العربية.",
    "שלום עולם, זהו משפט לבדיקה.",
    "नमस्ते दुनिया। यह एक परीक्षण वाक्य है।",
    "สวัสดีครับ วันนี้อากาศดีมาก",
    "Xin chào thế giới. Tiếng Việt có rất nhiều dấu.",
    "Grüße aus München! Straße, Mädchen, Öl, Übermut, ß.",
    "Ñandú, año, señor, pingüino; ¿qué tal? ¡Olé!",
    "Türkçe: ığüşöç İĞÜŞÖÇ; Polski: żółć ŻÓŁĆ; Čeština: ěščřžýáíé.",
    "English, 中文, 日本語, 한국어, Русский, العربية in one line.",
    "价格：￥128.00（含税），约合$17.6 / €16.2。",
    "全角ＡＢＣ１２３和半角ABC123混在一起。",
    "数学公式：E = mc²，∑ᵢ xᵢ² ≤ ∞，α + β = γ。",
    "箭头→←↑↓，符号★☆♠♣，框线┌─┐│└─┘。",
]

EDGE = {
    "empty": "",
    "space": " ",
    "newline": "\n",
    "tab": "\t",
    "spaces-then-newline": "   \n",
    "newline-then-spaces": "\n   ",
    "only-whitespace-mix": " \t \n\t\n \r\n ",
    "newlines-2": "\n\n",
    "newlines-3": "\n\n\n",
    "newlines-7": "\n" * 7,
    "newlines-99": "\n" * 99,
    "newlines-100": "\n" * 100,
    "newlines-101": "\n" * 101,
    "newlines-150": "\n" * 150,
    "newlines-between-words": "a\n\n\n\n\nb\n\n\n\n\n\n\n\n\nc",
    "cr": "line one\rline two\rline three",
    "crlf": "line one\r\nline two\r\nline three\r\n",
    "crlf-blank-lines": "\r\n\r\n\r\n",
    "mixed-line-ends": "unix\nwindows\r\nold mac\rend\n\r\n\r",
    "cr-runs": "\r\r\r\r\r\r",
    "nul": "\x00",
    "nuls": "a\x00b\x00\x00c\x00\x00\x00",
    "c0-controls": "".join(chr(c) for c in range(0x20) if c != 0x0A),
    "del": "\x7f\x7f",
    "c1-controls": "".join(chr(c) for c in range(0x80, 0xA0)),
    "nel": "one\x85two\x85",
    "line-paragraph-separators": "one\u2028two\u2029three",
    "vertical-tab-form-feed": "page\x0bone\x0cpage two",
    "bom": "\ufeffhello",
    "nbsp-and-friends": "a\u00a0b\u2002c\u2003d\u2009e\u200bf\u3000g",
    "zero-width": "zero\u200bwidth\u200cjoin\u200dmark\u2060",
    "soft-hyphen": "hy\u00adphen\u00adation",
    "nfd-e-acute": "cafe\u0301",
    "nfd-angstrom": "A\u030a and \u212b and \u00c5",
    "ohm-kelvin": "\u2126 \u212a",
    "nfd-hangul": "\u1112\u1161\u11ab\u1100\u1173\u11af",
    "cjk-compatibility": "\uf900\uf901\uf9dc\ufa0c",
    "combining-order": "a\u0307\u0323 a\u0323\u0307 q\u0307\u0323",
    "combining-stack": "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349",
    "vietnamese-nfd": "Vie\u0323\u0302t Nam",
    "singleton-decomposition": "\u0340\u0341\u0343\u0374\u037e\u0387",
    "emoji-simple": "\U0001f600\U0001f602\U0001f44d",
    "emoji-zwj-family": "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "emoji-skin-tones": "\U0001f44d\U0001f3fb\U0001f44d\U0001f3fd\U0001f44d\U0001f3ff",
    "emoji-flags": "\U0001f1e8\U0001f1f3\U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5",
    "emoji-keycaps": "1\ufe0f\u20e3#\ufe0f\u20e3*\ufe0f\u20e3",
    "emoji-variation": "\u2764\ufe0f \u2764\ufe0e \u263a\ufe0f",
    "emoji-in-text": "Nice work \U0001f389\U0001f389\U0001f389 see you \U0001f44b",
    "math-alphanumerics": "\U0001d400\U0001d401\U0001d402 \U0001d44e\U0001d44f \U0001d7ce\U0001d7cf",
    "cjk-ext-b": "\U00020000\U00020001\U0002a6d6",
    "gothic-deseret": "\U00010330\U00010331 \U00010400\U00010401",
    "private-use": "\ue000\uf8ff\U000f0000\U0010fffd",
    "noncharacters": "\ufffe\uffff\ufdd0",
    "replacement-char": "\ufffd\ufffd",
    "max-code-point": "\U0010ffff",
    "digits-scripts": "0123456789 \u0660\u0661\u0662 \u0966\u0967\u0968 \uff10\uff11\uff12 \u2460\u2461",
    "quotes-dashes": "\u201cquoted\u201d \u2018single\u2019 \u00abguillemets\u00bb en\u2013dash em\u2014dash \u2026",
    "rtl-override": "abc\u202edef\u202cghi",
}

# Runs whose best segmentations tie exactly (the same scores summed in another order), so the
# tie rule of the original decides the ids.
TIE_RUNS = {
    "spaces": " ",
    "tabs": "\t",
    "dashes": "-",
    "equals": "=",
    "hashes": "#",
    "stars": "*",
    "dots": ".",
    "underscores": "_",
    "zeros": "0",
    "ab": "ab",
    "abc": "abc",
    "ha": "ha",
    "la": "la ",
    "de": "的",
    "ha-zh": "哈",
    "space-newline": " \n",
    "tab-newline": "\t\n",
    "crlf": "\r\n",
    "indent": "    ",
    "arrow": "->",
}
TIE_LENGTHS = (2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 17, 31, 64)

# Words for the seeded generator (chosen for this file; the sentences they make are nonsense on
# purpose, so any common piece can meet any other).
ZH_WORDS = ("我们 你们 他们 今天 明天 昨天 已经 正在 可以 需要 应该 因为 所以 但是 如果 然后 模型 数据 训练 "
            "分词 文本 字节 词表 算法 速度 内存 文件 程序 问题 结果 时间 地方 朋友 学校 城市 天气 "
            "吃饭 睡觉 工作 学习 看书 写字 跑步 唱歌 喜欢 知道 觉得 开始 结束 非常 特别 有点 一个 "
            "两个 很多 一些 这个 那个 什么 怎么 为什么 的 了 在 是 和 也 都 就 还 又").split()
ZH_PUNCT = ("，", "。", "、", "；", "！", "？", "：")
EN_WORDS = ("the of and to in is that for it with as was on be by this are from at or an have not "
            "but they which one you all were her she there would their we him been has when who will "
            "more no if out so said what up its about into than them can only other new some could "
            "time these two may then do first any my now such like our over man me even most made "
            "after also did many before must through back years where much your way well down "
            "token tokenizer vocabulary piece segment corpus train model byte encode decode").split()
CODE_NAMES = ("x y i j k n idx count total value result data items buf text ids tokens model trie "
              "scores best start end node path self cls args kwargs config logger").split()
CODE_OPS = (" = ", " += ", " == ", " != ", " < ", " >= ", " + ", " - ", " * ", " // ", " % ", " and ", " or ")

# Blocks assigned by Unicode 3.1 at the latest (see the module docstring), as inclusive ranges.
UNICODE_POOL = (
    (0x20, 0x7E), (0xA1, 0xFF), (0x100, 0x17F), (0x300, 0x34E), (0x391, 0x3A1), (0x3A3, 0x3C9),
    (0x410, 0x44F), (0x5D0, 0x5EA), (0x621, 0x63A), (0x905, 0x939), (0xE01, 0xE2E), (0x1100, 0x1112),
    (0x1161, 0x1175), (0x11A8, 0x11C2), (0x2010, 0x2027), (0x2190, 0x21EA), (0x3041, 0x3093),
    (0x30A1, 0x30F6), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0xF900, 0xFA2D), (0xFF01, 0xFF5E),
    (0x1D400, 0x1D454), (0x20000, 0x2A6D6),
)


def _random_unicode(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        lo, hi = UNICODE_POOL[rng.randrange(len(UNICODE_POOL))]
        out.append(chr(rng.randrange(lo, hi + 1)))
        if rng.random() < 0.1:
            out.append(rng.choice(" \n\t"))
    return "".join(out)


def _zh_sentence(rng: random.Random) -> str:
    words = [rng.choice(ZH_WORDS) for _ in range(rng.randrange(4, 16))]
    for i in range(2, len(words), 5):
        words[i] += rng.choice(ZH_PUNCT[:3])
    return "".join(words) + rng.choice(ZH_PUNCT[1:])


def _en_sentence(rng: random.Random) -> str:
    words = [rng.choice(EN_WORDS) for _ in range(rng.randrange(4, 18))]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".!?;")


def _code_line(rng: random.Random) -> str:
    indent = " " * (4 * rng.randrange(0, 4))
    a, b, c = (rng.choice(CODE_NAMES) for _ in range(3))
    forms = (
        f"{a}{rng.choice(CODE_OPS)}{b}{rng.choice(CODE_OPS)}{rng.randrange(1000)}",
        f"def {a}_{b}({c}, *, {a}: int = {rng.randrange(10)}) -> list[int]:",
        f"for {a} in range(len({b})):",
        f"if {a}[{b}] is None:",
        f"return {a}.{b}({c})",
        f"{a}.append(({b}, {c}))  # {rng.choice(EN_WORDS)} {rng.choice(EN_WORDS)}",
        f'raise ValueError(f"bad {a}: {{{b}!r}}")',
    )
    return indent + rng.choice(forms)


def _generated(rng: random.Random) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for i in range(20):
        out.append((f"gen/zh-{i:02d}", "".join(_zh_sentence(rng) for _ in range(rng.randrange(1, 4)))))
    for i in range(20):
        out.append((f"gen/en-{i:02d}", " ".join(_en_sentence(rng) for _ in range(rng.randrange(1, 4)))))
    for i in range(12):
        out.append((f"gen/code-{i:02d}", "".join(_code_line(rng) + "\n" for _ in range(rng.randrange(1, 9)))))
    for i in range(12):
        parts = [rng.choice((_zh_sentence, _en_sentence, _code_line))(rng) for _ in range(rng.randrange(2, 6))]
        out.append((f"gen/mixed-{i:02d}", rng.choice(("", " ", "\n", "\n\n")).join(parts)))
    for i in range(12):
        n = rng.randrange(0, 160)
        out.append((f"gen/ascii-{i:02d}", "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(n))))
    for i in range(3):
        n = rng.randrange(20, 80)
        out.append((f"gen/bytes-{i:02d}", "".join(chr(rng.randrange(0, 0x80)) for _ in range(n))))
    for i in range(14):
        out.append((f"gen/unicode-{i:02d}", _random_unicode(rng, rng.randrange(1, 120))))
    return out


def _long(rng: random.Random) -> list[tuple[str, str]]:
    en = " ".join(_en_sentence(rng) for _ in range(100))
    zh = "".join(_zh_sentence(rng) for _ in range(60))
    code = "; ".join(_code_line(rng).strip() for _ in range(80))
    return [
        ("long/en-line", en),
        ("long/zh-line", zh),
        ("long/code-line", code),
        ("long/spaces", " " * 3000),
        ("long/abab", "ab" * 1000),
        ("long/dashes", "-" * 2000),
        ("long/newlines", "\n" * 1000),
        ("long/many-short-lines", "\n".join(f"{i} {rng.choice(EN_WORDS)}" for i in range(200))),
        ("long/unicode-line", _random_unicode(rng, 600).replace("\n", " ")),
    ]


def golden_texts() -> list[tuple[str, str]]:
    """(name, text) pairs in file order; names are unique and say where a text comes from."""
    rng = random.Random(SEED)
    texts: list[tuple[str, str]] = []
    texts += [(f"zh/line-{i:02d}", t) for i, t in enumerate(ZH_LINES)]
    texts += [(f"zh/paragraph-{i}", t) for i, t in enumerate(ZH_PARAGRAPHS)]
    texts += [(f"en/line-{i:02d}", t) for i, t in enumerate(EN_LINES)]
    texts += [(f"en/paragraph-{i}", t) for i, t in enumerate(EN_PARAGRAPHS)]
    texts += [(f"code/snippet-{i:02d}", t) for i, t in enumerate(CODE_SNIPPETS)]
    texts += [(f"mixed/line-{i:02d}", t) for i, t in enumerate(MIXED_LINES)]
    texts += [(f"edge/{k}", t) for k, t in EDGE.items()]
    texts += [(f"tie/{k}-{n}", unit * n) for k, unit in TIE_RUNS.items() for n in TIE_LENGTHS]
    texts += [(f"tie/{k}-in-text", f"x{unit * 5}y {unit * 6}\n{unit * 9}") for k, unit in TIE_RUNS.items()]
    texts += _generated(rng)
    texts += _long(rng)
    return texts
