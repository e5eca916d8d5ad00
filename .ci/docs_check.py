"""Check the built docs site in headless Chromium: no broken internal link, every image present; screenshots.

    python .ci/docs_check.py [--site _site]

Loads the home page, one API page and one tutorial page, the demo when there is one (a second API page when there is
no tutorial)
in `chromium --headless`, takes the DOM *after* the page's scripts ran (`--dump-dom`), and checks every
`href`/`src` that points inside the site: the file must exist (and a `#fragment` into a page of the site
must name an element id there). Every `<img>` must have a source that decodes as an image (embedded
`data:` images included). Every other page of the site gets the same link check on its HTML as built.
Screenshots go to `SITE/_screenshots/*.png` (the tutorial's is tall enough to reach the demo's proof figure). On failure it prints one line per broken link, naming the
page and the link, and exits 1.
"""
import argparse, base64, io, json, os, re, shutil, subprocess, sys, time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
LINK_ATTRS = {'a': 'href', 'link': 'href', 'img': 'src', 'script': 'src', 'source': 'src', 'iframe': 'src',
              'video': 'src', 'audio': 'src', 'embed': 'src'}


class Page(HTMLParser):
    "Links, images and element ids of an HTML document."
    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.links, self.imgs, self.ids = [], [], set()
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ('id', 'name'):
            if a.get(k): self.ids.add(a[k])
        if tag == 'img': self.imgs.append(a.get('src'))
        attr = LINK_ATTRS.get(tag)
        if attr and a.get(attr) is not None: self.links.append((tag, attr, a[attr]))


def _internal(url: str) -> bool:
    u = urlsplit(url)
    return not u.scheme and not u.netloc and not url.startswith(('#', '//')) or u.scheme == 'file'


_id_cache, WARN = {}, []
def _ids(path: Path) -> set:
    if path not in _id_cache: _id_cache[path] = Page(path.read_text(errors='replace')).ids
    return _id_cache[path]


def broken_links(site: Path, page: str, html: str) -> list[str]:
    "One line per broken internal link or missing image in `html`, the page at `site/page`."
    p, here, bad = Page(html), (site / page).parent, []
    for tag, attr, url in p.links:
        if not url.strip():
            if tag == 'img': bad.append(f'{page}: <img src=""> is empty')
            continue
        if url.startswith('data:') or not _internal(url): continue
        u = urlsplit(url)
        target = Path(unquote(u.path)) if u.scheme == 'file' else (here / unquote(u.path)).resolve()
        if u.path and not (target.is_file() or (target.is_dir() and (target / 'index.html').is_file())):
            bad.append(f'{page}: <{tag} {attr}="{url}"> points to {os.path.relpath(target, site)}, which is not in the site')
        elif u.fragment and tag == 'a' and target.suffix == '.html' and target.is_file() \
                and unquote(u.fragment) not in _ids(target) and WARN is not None:
            # the page exists, the anchor does not: the browser lands at the top of the page. Reported, not fatal.
            WARN.append(f'{page}: <a href="{url}"> names #{u.fragment}, which {os.path.relpath(target, site)} has no element for')
    for src in p.imgs:
        if not src: bad.append(f'{page}: <img> without src'); continue
        try:
            if src.startswith('data:'):
                head, _, data = src.partition(',')
                raw = base64.b64decode(data) if ';base64' in head else unquote(data).encode()
                if 'svg' not in head: _decode(raw)
            elif _internal(src):
                f = (here / unquote(urlsplit(src).path)).resolve()
                if f.is_file() and f.suffix.lower() != '.svg': _decode(f.read_bytes())
        except Exception as e: bad.append(f'{page}: <img src="{src[:60]}..."> is not a readable image ({e})')
    return bad


def _decode(raw: bytes):
    from PIL import Image
    with Image.open(io.BytesIO(raw)) as im: im.verify()


def chromium() -> str:
    for c in ('chromium', 'chromium-browser', 'google-chrome'):
        if shutil.which(c): return shutil.which(c)
    sys.exit('docs check: chromium not found (apt-get install -y chromium)')


def _chrome(*args, timeout=120, tries=2) -> subprocess.CompletedProcess:
    "Run headless Chromium offline: every host name fails at once, so a page's CDN fonts and scripts never stall it."
    flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--hide-scrollbars',
             '--allow-file-access-from-files', '--virtual-time-budget=3000', '--host-resolver-rules=MAP * ~NOTFOUND']
    for attempt in range(1, tries + 1):
        try: return subprocess.run([chromium(), *flags, *args], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f'docs check: chromium ran past {timeout} s ({args[-1]}), attempt {attempt} of {tries}', flush=True)
    sys.exit(f'docs check: chromium did not finish {args[-1]} in {tries} tries of {timeout} s: machine overloaded?')


def rendered_dom(path: Path) -> str:
    r = _chrome('--dump-dom', path.resolve().as_uri())
    if r.returncode or '<html' not in r.stdout.lower():
        sys.exit(f'docs check: chromium could not load {path}: {r.stderr.strip()[-500:]}')
    return r.stdout


def screenshot(path: Path, png: Path, height=1600):
    png.parent.mkdir(parents=True, exist_ok=True)
    _chrome(f'--screenshot={png.resolve()}', f'--window-size=1280,{height}', path.resolve().as_uri())
    if not png.is_file() or png.stat().st_size < 1000: sys.exit(f'docs check: no screenshot of {path} ({png})')


def pick_pages(site: Path) -> list[tuple[str, str]]:
    "(label, page): the home page, one API page, one tutorial page (or a second API page)."
    man = json.loads((site / '_pages.json').read_text())
    api = [p['page'] for p in man if p['kind'] == 'api']
    tut = sorted((p['page'] for p in man if p['kind'] == 'tutorial'), key=lambda page: 'demo' not in page)  # the demo first
    res = [('home', 'index.html')]
    if api: res.append(('api', api[0]))
    if tut: res.append(('tutorial', tut[0]))
    elif len(api) > 1: res.append(('api2', api[1]))
    return res


def main(site: Path):
    t0, bad = time.time(), []
    if not (site / 'index.html').is_file(): sys.exit(f'docs check: {site}/index.html missing: build the site first (.ci/docs)')
    shots = site / '_screenshots'
    for label, page in pick_pages(site):
        dom = rendered_dom(site / page)
        b = broken_links(site, page, dom)
        print(f'docs check: {page} ({label}) in chromium: {len(Page(dom).links)} links, {len(Page(dom).imgs)} images, '
              f'{len(b)} broken', flush=True)
        bad += b
        screenshot(site / page, shots / f'{label}_{page.replace("/", "_").removesuffix(".html")}.png', 4000 if label == 'tutorial' else 1600)
    # 404.html is served for any missing path, so its links are root-absolute by design: not checked
    pages = sorted(p for p in site.rglob('*.html') if '_screenshots' not in p.parts and p.name != '404.html')
    for p in pages:   # the rest of the site: the same check on the HTML as built
        bad += broken_links(site, p.relative_to(site).as_posix(), p.read_text(errors='replace'))
    bad = list(dict.fromkeys(bad))
    for l in dict.fromkeys(WARN): print(f'docs check: warning, missing anchor: {l}', flush=True)
    for l in bad: print(f'docs check: BROKEN {l}', flush=True)
    if bad: sys.exit(f'docs check: FAILED, {len(bad)} broken link(s)/image(s) (first: {bad[0]})')
    print(f'docs check: OK, {len(pages)} pages, screenshots in {os.path.relpath(shots, ROOT)}/ ({time.time() - t0:.0f} s)')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--site', default='_site', help='built site folder (default: _site)')
    main((ROOT / ap.parse_args().site).resolve())
