"""Helpers shared by several test modules: a made-up report and the app on a free port."""
from __future__ import annotations

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


def serve_app(pipeline, settings):
    """The app (UI + `ask` API) launched in this process on a free 127.0.0.1 port; (demo, url)."""
    sys.path.insert(0, str(REPO))
    import app

    demo = app.build_app(pipeline, settings)
    port = free_port()
    app.launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


__all__ = ["SAMPLE_REPORT", "free_port", "serve_app"]
