"""Helpers shared by several test modules: a made-up report, the app on a free port, refitting
a stored model."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llm_server import free_port

REPO = Path(__file__).resolve().parents[1]

# A small made-up work report (two sections, figures with units) for tiny test corpora.
SAMPLE_REPORT = (
    "示范区2024年工作报告\n"
    "发布日期:2024-03-01\n"
    "一、经济发展\n"
    "全年完成地区生产总值520亿元,增长6.5%。新增市场主体1.2万户。\n"
    "二、民生保障\n"
    "新建学校3所,新增城镇就业8000人。\n"
)

# A made-up quarterly progress table (three task rows) for the documents tests; written GBK-encoded.
PROGRESS_TABLE = (
    "示范区2025年重点工作事项工作进展情况表(第二季度)\n"
    "发布日期:2025-07-10\n"
    "序号工作事项2025年具体工作内容和任务目标主办单位完成时限二季度工作进展情况下一步工作计划\n"
    "1建设智慧灯杆示范路。年内在滨河大道建设智慧灯杆260根。\n"
    "区城市管理局12月底截至6月底,已完成智慧灯杆安装138根。继续推进剩余灯杆安装。\n"
    "2新建社区食堂。新建社区食堂14处,覆盖主要街道。\n"
    "区民政局10月底截至6月底,已建成社区食堂9处,日均就餐1200人次。加快剩余食堂选址建设。\n"
    "3改造雨污分流管网。完成雨污分流改造管网46公里。\n"
    "区水务局12月底截至6月底,已完成管网改造27.5公里。加快推进剩余管网施工。\n"
)
TABLE_QUESTION = "示范区社区食堂截至6月底已建成多少处?"


def serve_app(pipeline, settings):
    """The app (UI + `ask` API) launched in this process on a free 127.0.0.1 port; (demo, url)."""
    sys.path.insert(0, str(REPO))
    import app

    demo = app.build_app(pipeline, settings)
    port = free_port()
    app.launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


__all__ = ["PROGRESS_TABLE", "SAMPLE_REPORT", "TABLE_QUESTION", "free_port", "serve_app"]


def refit(module: str, index: Path, out: Path) -> None:
    """Run a fitting command (`python -m eval.fit_senses`, `eval.train_reader`) on `index`,
    writing to `out`; it must succeed."""
    run = subprocess.run([sys.executable, "-m", module, "--index", str(index), "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stderr[-2000:]
