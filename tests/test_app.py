"""The Gradio app over HTTP: the `ask` API (gradio_client), errors, and HTML escaping."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import app  # noqa: E402
from helpers import free_port, serve_app  # noqa: E402

QUESTION = "即墨区2022年新建了多少个5G基站?"
# A document whose text, title and headings carry markup that would run if not escaped.
EVIL_DOC = """<script>window.__xss=1</script>青岛市某区2022年重点工作任务<img src=x onerror="window.__xss=2">

一、基础设施建设
1.新建污水处理厂3座<script>window.__xss=3</script>,由区水务局<img src=x onerror="window.__xss=4">牵头,12月底前完成。
2.改造老旧小区<a href="javascript:window.__xss=5">45个</a>,由区住房城乡建设局牵头。
"""
EVIL_QUESTION = '<img src=x onerror="window.__xss=6"><script>window.__xss=7</script>新建污水处理厂几座?'


def build_evil_index(folder: Path, settings) -> Path:
    """A real index over EVIL_DOC (in `folder`/index)."""
    from dataclasses import replace

    from rag.index import build_index

    (folder / "docs").mkdir(parents=True, exist_ok=True)
    (folder / "docs" / "evil.txt").write_text(EVIL_DOC, encoding="utf-8")
    build_index([folder / "docs"], replace(settings, index_dir=str(folder / "index")), progress=False)
    return folder / "index"


@pytest.fixture(scope="module")
def client(pipeline, settings):
    from gradio_client import Client

    demo, url = serve_app(pipeline, settings)
    yield Client(url, verbose=False)
    demo.close()


def test_ask_endpoint_answers_with_figure_and_task_row(client):
    result = client.predict(QUESTION, api_name="/ask")
    assert set(result) >= {"answer", "abstained", "citations", "figures", "mode", "confidence", "timings"}
    assert 0 < result["confidence"] <= 1  # the reader's probability of being right
    assert not result["abstained"] and result["mode"] == "extractive"
    assert "1115" in result["answer"]
    rows = [c for c in result["citations"] if c["doc"].startswith("000_") and c["meta"].get("row") == 21]
    assert rows, result["citations"]
    assert "1115" in "".join(c["quote"] for c in rows)
    assert any(f["verified"] for f in result["figures"])
    assert result["timings"]["total_ms"] > 0


def test_ask_endpoint_filters(client):
    doc = "001_07901cef5f83406f.txt"
    by_arg = client.predict("牵头单位是哪个?", 3, doc, api_name="/ask")
    by_json = client.predict("牵头单位是哪个?", 3, "", "", "", '{"doc": "%s"}' % doc, api_name="/ask")
    for result in (by_arg, by_json):
        cited = result["citations"] or result["passages"]
        assert cited and {c["doc"] for c in cited} == {doc}
        assert len(cited) <= 3
    year = client.predict(QUESTION, 0, "", "", "2021", api_name="/ask")
    assert all(c["meta"].get("year") in (2021, None) for c in year["citations"] + year["passages"])


def test_empty_question_is_a_clear_error(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="empty"):
        client.predict("   ", api_name="/ask")
    with pytest.raises(AppError, match="JSON"):
        client.predict(QUESTION, 0, "", "", "", "{not json", api_name="/ask")
    assert "1115" in client.predict(QUESTION, api_name="/ask")["answer"]  # the server is still fine


def test_auth_parsing():
    assert app.parse_auth(None) is None
    assert app.parse_auth("me:s3:cret") == ("me", "s3:cret")
    with pytest.raises(app.GovragError):
        app.parse_auth("nopassword")


def _live_markup(fragment: str) -> list[str]:
    """Tags or attributes in HTML that a browser would turn into running code."""
    return re.findall(r"<\s*(?:script|img|svg|iframe)\b|\bon\w+\s*=\s*\"|href\s*=\s*\"javascript:", fragment, re.I)


def test_html_from_documents_and_question_is_escaped(tmp_path_factory, settings):
    """The chat and the sources panel, as sent to the browser, carry no live markup from a
    document or a question that contain <script> and <img onerror>."""
    from gradio_client import Client

    from rag.pipeline import Pipeline

    index = build_evil_index(tmp_path_factory.mktemp("evil"), settings)
    demo, url = serve_app(Pipeline.load(index, settings), settings)
    try:
        client = Client(url, verbose=False)
        doc_chat, doc_sources, _, doc_status, _ = client.predict(
            "新建污水处理厂几座?", [], 5, "", "", "", "extractive", "zh", api_name="/respond")
        q_chat, q_sources, _, q_status, _ = client.predict(
            EVIL_QUESTION, [], 5, "", "", "", "extractive", "en", api_name="/respond")
    finally:
        demo.close()

    def text(chat: list) -> str:
        return " ".join(part["text"] for m in chat for part in m["content"] if part.get("type") == "text")

    assert "3座" in text(doc_chat) and "<mark>" in doc_sources  # the evil document was cited
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in doc_sources  # its title, shown as text
    assert "&lt;img src=x onerror=" in doc_sources and "&lt;img src=x onerror=" in text(doc_chat)
    assert "&lt;img src=x onerror=" in text(q_chat)  # the question, shown as text
    for fragment in (text(doc_chat), doc_sources, doc_status, text(q_chat), q_sources, q_status):
        assert _live_markup(fragment) == [], fragment


def test_render_sources_escapes_every_field():
    from rag.models import Answer, Chunk, Citation, Figure

    text = "前文<script>x()</script>被引用的<b>句子</b>。后文"
    chunk = Chunk("d:section:1:0", "<i>d</i>.txt", "section", text, ["<t>", "<h onclick=\"x()\">"], 100, 100 + len(text),
                  {"district": "<s>区</s>", "year": 2022, "title": "<t>"})
    s = text.index("被")
    cite = Citation(1, chunk.id, chunk.doc, "<img src=x onerror=x()>", chunk.heading_path, text[s:s + 14],
                    100 + s, 100 + s + 14, 0.5, {"lead_unit": "<u>局</u>"})
    answer = Answer("q", "a", [cite], [Figure("<b>3</b>个", 3, "个", False, 1)])
    html = app.render_sources(answer, {chunk.id: chunk}, "zh")
    assert _live_markup(html) == []
    assert "<b>" not in html and "<i>" not in html and "<s>" not in html and "<u>" not in html
    assert "<mark>被引用的&lt;b&gt;句子&lt;/b&gt;。</mark>" in html
    assert "✗" in html  # an unverified figure is marked as such


def test_llm_answers_stream_and_do_not_block_extractive_ones(pipeline, settings, fake_server):
    """With an LLM that trickles tokens until its timeout: the chat streams them, then falls back
    to the extractive answer with a note; meanwhile extractive questions are answered at once."""
    from dataclasses import replace

    from gradio_client import Client

    from rag.pipeline import Pipeline

    llm_settings = replace(settings, llm_base_url=f"{fake_server}/trickle/v1", llm_model="fake", llm_timeout=3.0)
    demo, url = serve_app(Pipeline(pipeline.retriever, llm_settings), llm_settings)
    try:
        client = Client(url, verbose=False)
        job = client.submit(QUESTION, [], 5, "", "", "", "llm", "zh", api_name="/respond")
        time.sleep(0.8)
        started = time.perf_counter()
        quick = client.predict(QUESTION, api_name="/ask")
        quick_s = time.perf_counter() - started
        assert not job.done(), "the LLM answer should still be streaming"
        chat, sources, _, status, took = job.result(timeout=30)
        streamed = [out[0][-1]["content"][0]["text"] for out in job.outputs() if out[0]]
    finally:
        demo.close()
    assert quick_s < 2.0 and "1115" in quick["answer"] and quick["mode"] == "extractive"
    partial = [t for t in streamed if t.startswith("慢") and t.endswith("▌")]
    assert len(partial) >= 2 and len({len(t) for t in partial}) >= 2  # grew token by token
    final = chat[-1]["content"][0]["text"]
    assert "1115" in final and "extractive answer instead" in final
    assert "<mark>" in sources and "大模型生成" not in status and "抽取式" in status
    assert re.fullmatch(r" · 上次用时 \d+\.\d\d 秒", took), took


def test_basic_auth(pipeline, settings):
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    demo = app.build_app(pipeline, settings)
    port = free_port()
    app.launch(demo, "127.0.0.1", port, auth=app.parse_auth("reader:s3cret"), prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        assert "1115" in Client(url, auth=("reader", "s3cret"), verbose=False).predict(QUESTION, api_name="/ask")["answer"]
        with pytest.raises(AuthenticationError, match="credentials were not provided"):
            Client(url, verbose=False)
        with pytest.raises(ValueError, match="Could not login"):
            Client(url, auth=("reader", "wrong"), verbose=False)
    finally:
        demo.close()


def test_abstention_shows_closest_passages_unmarked():
    from rag.models import Answer, Chunk, Citation

    chunk = Chunk("d:section:1:0", "d.txt", "section", "最接近的段落<script>x</script>", ["标题"], 0, 24, {})
    passage = Citation(1, chunk.id, "d.txt", "标题", ["标题"], chunk.text[:6], 0, 6, 0.1, {})
    html = app.render_sources(Answer("q", "文档中没有找到", abstained=True, passages=[passage]), {chunk.id: chunk}, "zh")
    assert "最接近的段落:" in html and "最接近的段落&lt;script&gt;" in html
    assert "<mark>" not in html and _live_markup(html) == []


def test_concurrent_questions_all_answered(client):
    questions = [QUESTION, "城阳区2023年“强化科技平台载体赋能”由哪个单位牵头?"] * 4
    jobs = [client.submit(q, api_name="/ask") for q in questions]
    results = [job.result(timeout=60) for job in jobs]
    for q, r in zip(questions, results):
        assert r["question"] == q
        assert ("1115" in r["answer"]) if q == QUESTION else ("区科技局" in r["answer"])


# ---------------------------------------------------------------- documents through the API (issue 16)

@pytest.fixture
def small_pipeline(settings, tmp_path):
    """A Pipeline over one seed document in a temp index with its own uploads folder."""
    import shutil
    from dataclasses import replace

    from rag.index import build_index
    from rag.pipeline import Pipeline

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(next((REPO / "seeds").glob("004_*.txt")), docs)
    shutil.copytree(settings.cache_dir, tmp_path / "cache")
    s = replace(settings, index_dir=str(tmp_path / "index"), cache_dir=str(tmp_path / "cache"),
                uploads_dir=str(tmp_path / "uploads"))
    build_index([docs], s, progress=False)
    return Pipeline.load(s.index_dir, s)


def _upload_files(tmp_path: Path) -> tuple[Path, Path]:
    from helpers import PROGRESS_TABLE

    table, exe = tmp_path / "q2_table.txt", tmp_path / "setup.exe"
    table.write_bytes(PROGRESS_TABLE.encode("gbk"))
    exe.write_bytes(b"MZ" + bytes(2048))
    return table, exe


def test_documents_api_adds_lists_and_removes(small_pipeline, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from helpers import TABLE_QUESTION

    table, exe = _upload_files(tmp_path)
    demo, url = serve_app(small_pipeline, small_pipeline.settings)
    try:
        client = Client(url, verbose=False)
        assert [d["name"] for d in client.predict(api_name="/documents")] == ["004_ca1486c1af4b8de3.txt"]
        added = client.predict([handle_file(str(table)), handle_file(str(exe))], api_name="/add_documents")
        assert added["added"] == ["q2_table.txt"] and added["replaced"] == []
        assert added["skipped"] == ["setup.exe: .exe files are not accepted; add .docx .htm .html .md .pdf .txt documents"]
        listed = {d["name"]: d for d in client.predict(api_name="/documents")}
        assert listed["q2_table.txt"]["uploaded"] and listed["q2_table.txt"]["chunks"] == 4
        answer = client.predict(TABLE_QUESTION, api_name="/ask")
        assert "9处" in answer["answer"] and answer["citations"][0]["doc"] == "q2_table.txt"
        assert answer["retrieval"] in ("lexical", "hybrid")
        left = client.predict("q2_table.txt", api_name="/remove_document")
        assert [d["name"] for d in left["documents"]] == ["004_ca1486c1af4b8de3.txt"]
        assert "9处" not in client.predict(TABLE_QUESTION, api_name="/ask")["answer"]
        with pytest.raises(AppError, match="no document named 'q2_table.txt'"):
            client.predict("q2_table.txt", api_name="/remove_document")
    finally:
        demo.close()


def test_adding_and_removing_need_a_signed_in_user_when_auth_is_on(small_pipeline, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    table, _ = _upload_files(tmp_path)
    open_demo = app.build_app(small_pipeline, small_pipeline.settings, require_login=True)
    port = free_port()
    app.launch(open_demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)  # (no login configured)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        with pytest.raises(AppError, match="Sign in to add or remove documents"):
            client.predict([handle_file(str(table))], api_name="/add_documents")
        with pytest.raises(AppError, match="Sign in"):
            client.predict("004_ca1486c1af4b8de3.txt", api_name="/remove_document")
        assert len(client.predict(api_name="/documents")) == 1  # reading stays open; nothing changed
    finally:
        open_demo.close()
    demo = app.build_app(small_pipeline, small_pipeline.settings, require_login=True)
    port = free_port()
    app.launch(demo, "127.0.0.1", port, auth=("editor", "s3cret"), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", auth=("editor", "s3cret"), verbose=False)
        assert client.predict([handle_file(str(table))], api_name="/add_documents")["added"] == ["q2_table.txt"]
    finally:
        demo.close()
