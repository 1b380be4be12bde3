"""Write ``data/sample_corpus.txt``: the small training corpus shipped with bytepiece.

Everything in it is written by this project: Chinese and English paragraphs assembled from the
hand-written sentence templates and word lists below (seeded, so the output is deterministic),
and the project's own Python source files (``bytepiece/``, ``cli/``, ``bench/``) as code.
One paragraph per line; a source file keeps its own newlines, as in a real code corpus.

    python data/make_sample_corpus.py            # rewrites data/sample_corpus.txt
    python data/make_sample_corpus.py --check    # exit 1 if the file is not what this script makes

The output depends only on this script and the listed source files (their current contents).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = Path(__file__).resolve().parent / "sample_corpus.txt"
SEED = 20240607
ZH_PARAGRAPHS = 1000
EN_PARAGRAPHS = 900
CODE_DIRS = ("bytepiece", "cli", "bench")
CODE_BYTES = 170_000

# -- Chinese -----------------------------------------------------------------------------------

ZH = {
    "person": ["小王", "李老师", "我的邻居", "这位工程师", "张阿姨", "那个学生", "我们团队的新人", "一位老农民",
               "隔壁的医生", "刚毕业的程序员", "陈经理", "他的妹妹", "一位作家", "出租车司机", "图书馆管理员"],
    "place": ["北京", "上海的老街", "山脚下的小村子", "图书馆", "火车站", "海边", "公司楼下的咖啡馆", "杭州西湖",
              "学校操场", "菜市场", "成都的茶馆", "实验室", "机场", "江边的公园", "深圳的科技园"],
    "time": ["今天早上", "昨天晚上", "上个周末", "去年冬天", "每年春节", "下午三点左右", "这几天", "前不久",
             "明年夏天", "凌晨两点", "午饭以后", "国庆节期间", "刚下过雨的时候", "月底", "一大早"],
    "thing": ["一本旧书", "新买的电脑", "一杯热茶", "自行车", "这份报告", "一篇文章", "一台服务器", "那张地图",
              "手机", "一碗面条", "这段代码", "模型文件", "一封信", "一把雨伞", "数据集"],
    "topic": ["分词算法", "机器学习", "城市交通", "传统节日", "天气变化", "健康饮食", "开源软件", "中文信息处理",
              "语言模型", "历史文化", "教育改革", "环境保护", "网络安全", "数据压缩", "旅游经济"],
    "adj": ["很有意思", "非常复杂", "比想象中简单", "特别安静", "有点奇怪", "相当重要", "越来越流行", "不太稳定",
            "十分方便", "让人放心", "值得研究", "容易出错", "慢慢变好", "出乎意料", "非常实用"],
    "verb": ["讨论", "研究", "整理", "修改", "阅读", "测试", "介绍", "比较", "记录", "分析", "改进", "解释"],
}

ZH_TEMPLATES = [
    "{time}，{person}在{place}{verb}{topic}。",
    "{person}说，{topic}其实{adj}，只是很多人没有耐心去了解。",
    "我们{time}去了{place}，那里{adj}。",
    "{person}把{thing}放在桌子上，然后开始{verb}{topic}。",
    "如果你想{verb}{topic}，最好先从简单的例子开始。",
    "关于{topic}的问题，{person}已经{verb}了好几个星期。",
    "{time}的{place}{adj}，来来往往的人也比平时少。",
    "这篇文章主要{verb}了{topic}的发展过程和几个常见的误区。",
    "{person}告诉我：“别着急，{thing}明天就能修好。”",
    "虽然{topic}{adj}，但是只要方法正确，大多数人都能学会。",
    "在{place}，{person}第一次看到了{thing}。",
    "大家都认为{topic}{adj}，所以会议一直开到了晚上。",
    "{person}一边喝茶，一边{verb}昨天收到的{thing}。",
    "为了{verb}{topic}，我们收集了大约{num}条记录。",
    "根据统计，{place}{time}的游客人数增加了百分之{pct}。",
    "{person}认为，{topic}的关键在于数据的质量，而不是模型的大小。",
    "这个问题看起来{adj}，其实只需要换一个角度思考。",
    "{time}我在{place}遇到了{person}，我们聊了很久关于{topic}的事情。",
    "第{num}次实验的结果表明，新的方法确实{adj}。",
    "请把{thing}交给{person}，{person2}会在{time}处理。",
    "{person}写了一个小程序来{verb}{topic}，代码只有{num}行。",
    "对于初学者来说，{topic}{adj}，需要多练习。",
    "窗外下着小雨，{person}安静地{verb}着{thing}。",
    "我们的目标是让{topic}变得更简单、更可靠、更快。",
    "{place}有很多历史悠久的建筑，每一座都有自己的故事。",
    "经过{num}个小时的讨论，大家终于对{topic}达成了一致。",
    "分词的时候，常用的词语应该作为一个整体，而少见的词可以拆成更小的片段。",
    "压缩率越高，同样长度的文本需要的词元就越少，模型处理起来也越快。",
    "{person}问：“{topic}和我们的日常生活有什么关系？”",
    "这家店的{thing}{adj}，价格也很合理，周末总是排着长队。",
]


def _zh_paragraph(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(2, 7)):
        template = rng.choice(ZH_TEMPLATES)
        fill = {k: rng.choice(v) for k, v in ZH.items()}
        fill["person2"] = rng.choice(ZH["person"])
        fill["num"] = str(rng.choice([3, 5, 8, 12, 20, 36, 100, 256, 1000, 2048]))
        fill["pct"] = str(rng.randint(2, 60))
        sentences.append(template.format(**fill))
    return "".join(sentences)


# -- English -----------------------------------------------------------------------------------

EN = {
    "person": ["my neighbour", "the new engineer", "a retired teacher", "our team lead", "the librarian",
               "a curious student", "the night-shift nurse", "an old fisherman", "the shop owner", "my sister",
               "a visiting researcher", "the bus driver", "the youngest volunteer", "a local farmer", "the editor"],
    "place": ["the harbour", "a small mountain village", "the city library", "the train station", "the old market",
              "the lab on the third floor", "a quiet cafe", "the riverside park", "the school gym", "the airport",
              "a crowded office", "the community garden", "the museum", "the north campus", "a rented cabin"],
    "time": ["this morning", "last night", "on Sunday", "every winter", "around noon", "after the meeting",
             "in the spring of last year", "a few days ago", "before sunrise", "late in the evening",
             "during the holidays", "at the end of the month", "right after lunch", "next week", "for years"],
    "thing": ["an old notebook", "the new laptop", "a cup of coffee", "the bicycle", "the quarterly report",
              "a long letter", "the backup server", "a hand-drawn map", "the phone", "a bowl of soup",
              "the training script", "the model file", "an umbrella", "the data set", "a box of tools"],
    "topic": ["tokenization", "machine learning", "public transport", "seasonal festivals", "the weather",
              "healthy cooking", "open source software", "text compression", "language models", "local history",
              "school reform", "clean energy", "network security", "data quality", "small businesses"],
    "adj": ["surprisingly simple", "quite complicated", "very useful", "a little strange", "really important",
            "more popular every year", "not very stable", "easy to get wrong", "worth a closer look",
            "much faster than expected", "hard to explain", "pleasantly quiet", "full of surprises",
            "remarkably reliable", "still unfinished"],
    "verb": ["discussed", "studied", "rewrote", "tested", "explained", "compared", "measured", "cleaned up",
             "reviewed", "described", "improved", "summarized"],
}

EN_TEMPLATES = [
    "{Time_}, {person} {verb} {topic} at {place}.",
    "According to {person}, {topic} is {adj}, but few people take the time to learn it properly.",
    "We went to {place} {time}, and it was {adj}.",
    "{Person} put {thing} on the table and {verb} the notes from {time}.",
    "If you want to understand {topic}, start with a small example and measure everything.",
    "The article {verb} how {topic} has changed over the last {num} years.",
    "\"Don't worry,\" said {person}, \"{thing} will be ready by tomorrow.\"",
    "Although {topic} is {adj}, most people can learn it with a bit of practice.",
    "At {place}, {person} saw {thing} for the first time.",
    "Everyone agreed that {topic} was {adj}, so the meeting ran late.",
    "{Person} wrote a short program to study {topic}; it was only {num} lines long.",
    "After {num} hours of work, the team finally {verb} the last part of the plan.",
    "The results of experiment {num} show that the new method is {adj}.",
    "Please give {thing} to {person}, who will look at it {time}.",
    "A good tokenizer keeps common words whole and splits rare words into smaller pieces.",
    "The higher the compression, the fewer tokens a model needs for the same text.",
    "It was raining, so {person} stayed inside and {verb} {thing}.",
    "Visitors to {place} increased by {pct} percent {time}.",
    "{Person} asked what {topic} has to do with everyday life.",
    "The soup at {place} is {adj}, and the prices are fair, so there is always a queue.",
    "Nobody expected {topic} to be {adj}, least of all {person}.",
    "We measured the speed twice, once with one worker and once with {num} workers.",
    "{Time_} the streets near {place} were {adj}.",
    "Keep the first version simple; you can always make {topic} faster later.",
    "{Person} kept {thing} in a drawer for {num} days before anyone noticed.",
    "In the end, {topic} turned out to be {adj} and nobody regretted the effort.",
]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _en_paragraph(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(2, 6)):
        template = rng.choice(EN_TEMPLATES)
        fill = {k: rng.choice(v) for k, v in EN.items()}
        fill["Person"] = _cap(fill["person"])
        fill["Time_"] = _cap(fill["time"])
        fill["num"] = str(rng.choice([2, 3, 4, 8, 10, 12, 16, 24, 32, 100, 500]))
        fill["pct"] = str(rng.randint(2, 60))
        sentences.append(_cap(template.format(**fill)))
    return " ".join(sentences)


# -- code --------------------------------------------------------------------------------------

def _code_files() -> list[Path]:
    files: list[Path] = []
    for d in CODE_DIRS:
        files.extend(sorted((ROOT / d).rglob("*.py")))
    return [f for f in files if "__pycache__" not in f.parts]


def _code_documents(rng: random.Random) -> list[str]:
    files = _code_files()
    rng.shuffle(files)
    docs: list[str] = []
    total = 0
    for f in files:
        text = f.read_text(encoding="utf-8")
        if not text.strip() or total + len(text.encode("utf-8")) > CODE_BYTES:
            continue
        docs.append(text if text.endswith("\n") else text + "\n")
        total += len(text.encode("utf-8"))
    return docs


def build() -> str:
    rng = random.Random(SEED)
    items = [_zh_paragraph(rng) + "\n" for _ in range(ZH_PARAGRAPHS)]
    items += [_en_paragraph(rng) + "\n" for _ in range(EN_PARAGRAPHS)]
    items += _code_documents(rng)
    rng.shuffle(items)
    return "".join(items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the existing file")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = build()
    data = text.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        same = args.output.is_file() and args.output.read_bytes() == data
        print(f"{args.output}: {'up to date' if same else 'differs from a fresh build'} (sha256 {digest[:16]})")
        return 0 if same else 1
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(args.output)
    print(f"wrote {args.output}: {len(data):,} bytes, {text.count(chr(10)):,} lines, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
