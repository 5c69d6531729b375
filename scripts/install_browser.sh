#!/bin/sh
# Install what tests/test_browser.py needs: the Debian Chromium at /usr/bin/chromium (driven by
# Playwright) and a CJK font so the page and docs/screenshot.png show Chinese, not boxes.
# Idempotent: does nothing when both are there. Needs root (or password-less sudo) for apt-get;
# without it, it says so and exits 0 (the browser test then skips with that reason).
set -eu
BROWSER=${GOVRAG_CHROMIUM:-/usr/bin/chromium}
need=""
[ -x "$BROWSER" ] || need="chromium"
if ! command -v fc-list >/dev/null 2>&1 || [ -z "$(fc-list :lang=zh 2>/dev/null | head -n 1)" ]; then
    need="$need fonts-noto-cjk"
fi
[ -n "$need" ] || exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: no apt-get; install$need yourself" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "install_browser: not root and no password-less sudo; cannot install$need" >&2
        exit 0
    fi
fi
echo "install_browser: apt-get install$need" >&2
# shellcheck disable=SC2086
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null; }; then
    echo "install_browser: apt-get install$need failed" >&2
fi
exit 0
