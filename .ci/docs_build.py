"""Build the docs site without Quarto: nbdev's own notebook processors + mkdocs-material + mkdocs-jupyter.

    python .ci/docs_build.py [--out _site]

Every notebook under `nbs/` (found the way nbdev finds them, so new ones and `nbs/tutorials/*.ipynb` are
picked up) goes through `nbdev.processors.FilterDefaults`, the processing `nbdev_docs` applies before
Quarto: `#| hide` and exported cells removed, `show_doc` added and rendered for every export, directives
stripped, backticked names linked. Notebooks are NOT executed: pages show the outputs stored in them
(only the export/import cells run, in-process, to render `show_doc`, exactly as nbdev does). The
Quarto-only leftovers (YAML front matter, `#| echo: false`, `{target=...}` attributes, absolute doc
links) are turned into what mkdocs-jupyter understands. `guide.md` (the training guide) is generated from
the console scripts' own `--help`. Sources go to `_site_src/`, the site to `--out` (both gitignored).
"""
import argparse, ast, json, os, re, shutil, subprocess, sys, tempfile, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the package of this checkout, also when not pip-installed
os.chdir(ROOT)                 # nbdev's get_config() reads settings.ini from here

from nbdev.config import get_config
from nbdev.doclinks import nbglob, _nbpath2html
from nbdev.processors import FilterDefaults, exec_show_docs, _do_eval, _show_docs, _default_exp
from execnb.nbio import read_nb, nb2dict

_re_dir = re.compile(r'^\s*#\|\s*(.*?)\s*$')
_re_attrs = re.compile(r'\)\{[^}\n]*\}')                  # Quarto link attributes: [source](url){target=...}
_re_fence = re.compile(r'^:::.*$', re.MULTILINE)         # Quarto fenced divs (callouts, boxes)
_re_h3 = re.compile(r'^(#{2,4}) (\S+)\s*$', re.MULTILINE)  # show_doc headings


class exec_show_docs_only(exec_show_docs):
    """nbdev's `exec_show_docs`, minus one thing: a cell that mixes imports with other code (a test that
    imports something, say) gets only its top-level imports run, not the whole cell, so building the docs
    never runs a notebook's tests or jobs. Exported cells, pure import cells and `show_doc` cells run as
    in nbdev (the show_doc cells' outputs are the API reference)."""
    def __call__(self, cell):
        if not self.nb.has_docs_ or not hasattr(self, 'k'): return
        fm = getattr(self.nb, 'frontmatter_', {})
        if str(fm.get('skip_showdoc', False)).lower() in ('true', '1', 'yes'): return
        if not _do_eval(cell): return
        trees = cell.parsed_()
        is_imp = lambda t: isinstance(t, (ast.Import, ast.ImportFrom))
        exported = cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}
        if exported or all(map(is_imp, trees)) or _show_docs(trees):
            self.k.cell(cell)
        else: self.k.run_cell('\n'.join(ast.unparse(t) for t in trees if is_imp(t)))
        if self.k.exc:
            where = f"{getattr(self.nb, 'path_', '?')}, cell {cell.idx_}"
            raise Exception(f"docs: error in {where}:\n{cell.source}") from self.k.exc


class DocsFilter(FilterDefaults):
    "nbdev's docs processors with `exec_show_docs_only` in place of `exec_show_docs`."
    def base_procs(self): return [exec_show_docs_only if p is exec_show_docs else p for p in super().base_procs()]


def page_name(nb_path: Path, nbs: Path) -> Path:
    "The page a notebook becomes, named as nbdev/Quarto name it: `08_train.ipynb` -> `train.html`."
    return _nbpath2html(nb_path.relative_to(nbs))


def _directives(src: str):
    "Quarto/nbdev directives (`#| key: value`) at the top of a cell, and the source without them."
    lines, d = src.splitlines(), {}
    body = []
    for i, l in enumerate(lines):
        m = _re_dir.match(l)
        if m and not body:
            k, _, v = m.group(1).partition(':')
            d[k.strip()] = v.strip()
        else: body.append(l)
    return d, '\n'.join(body).strip('\n')


def _relink(text: str, doc_url: str, here: Path) -> str:
    "Absolute links into the (Quarto) doc site -> relative links into this site."
    if not doc_url: return text
    up = '../' * (len(here.parts) - 1)
    return text.replace(doc_url, up)


_re_private_link = re.compile(r'\[(`_\w+`)\]\([^)\s]*#_\w+\)')  # nbdev's backtick link to a private helper


def _unlink_private(md: str) -> str:
    "Backticked private helpers (`_name`) stay code, not links: nbdev documents no private name, so no anchor exists."
    return _re_private_link.sub(r'\1', md)


def _anchor(md: str) -> str:
    "Give show_doc headings the lower-case ids Quarto gives them, so `page.html#name` links land."
    return _re_h3.sub(lambda m: f'<a id="{m.group(2).lower()}"></a>\n\n{m.group(1)} {m.group(2)}', md)


_re_bar = re.compile(r'\d+%\|.*\|\s*\d+/\d*|\|\s*\d+/\d+ \[|\d+(?:\.\d+)?\s*[a-zA-Z]*/s\]')  # a tqdm progress bar


def without_progress_bars(out: dict) -> dict | None:
    ("A stderr stream output without its tqdm progress bars (transient on screen, walls of text on a page); "
     "None when nothing else is left.")
    if out.get('output_type') != 'stream' or out.get('name') != 'stderr': return out
    text = ''.join(out['text']) if isinstance(out['text'], list) else out['text']
    kept = [l for l in re.split(r'[\r\n]', text) if l.strip() and not _re_bar.search(l)]
    return {**out, 'text': '\n'.join(kept) + '\n'} if kept else None


def to_mkdocs_nb(nb, page: Path, doc_url: str) -> tuple[dict, str]:
    "A processed notebook as a plain .ipynb for mkdocs-jupyter, and its title."
    d = nb2dict(nb)
    fm, cells = getattr(nb, 'frontmatter_', {}) or {}, []
    title = fm.get('title') or page.stem.replace('_', ' ')
    head = f'# {title}\n'
    if fm.get('description'): head += f'\n> {fm["description"]}\n'
    cells.append({'cell_type': 'markdown', 'metadata': {}, 'source': head})
    for c in d['cells']:
        src = c.get('source', '')
        if isinstance(src, list): src = ''.join(src)
        if c['cell_type'] == 'raw': continue                      # front matter, now the title cell
        if c['cell_type'] == 'markdown':
            if src.startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
            src = _re_fence.sub('', _re_attrs.sub(')', src)).strip()
            if not src: continue
            src = _relink(_unlink_private(src), doc_url, page)
            cells.append({'cell_type': 'markdown', 'metadata': {}, 'source': src})
            continue
        dirs, src = _directives(src)
        if dirs.get('include') == 'false': continue
        meta, outs = {'tags': []}, c.get('outputs', [])
        if dirs.get('echo') == 'false' or dirs.get('hide_input') is not None: meta['tags'].append('remove_input')
        if dirs.get('output') == 'false': outs = []
        outs = [o for o in map(without_progress_bars, outs) if o is not None]
        for o in outs:
            data = o.get('data', {})
            if 'text/markdown' in data:
                md = data['text/markdown']
                md = ''.join(md) if isinstance(md, list) else md
                data['text/markdown'] = _relink(_anchor(_re_attrs.sub(')', md)), doc_url, page)
                data.pop('text/plain', None)
        if not src.strip() and not outs: continue
        cells.append({'cell_type': 'code', 'metadata': meta, 'source': src, 'outputs': outs,
                      'execution_count': c.get('execution_count')})
    md = d.get('metadata', {})
    out = {'cells': cells, 'metadata': {k: md[k] for k in ('kernelspec', 'language_info', 'widgets') if k in md},
           'nbformat': 4, 'nbformat_minor': 5}
    for i, c in enumerate(out['cells']): c['id'] = f'c{i}'
    return out, title


# ---------------------------------------------------------------------------------------------- guide
def console_scripts(cfg) -> list[tuple[str, str, str]]:
    "(name, module, function) for every console script declared in settings.ini."
    res = []
    for line in cfg.get('console_scripts', '').split():
        name, _, target = line.partition('=')
        mod, _, fn = target.partition(':')
        if name and mod and fn: res.append((name.strip(), mod.strip(), fn.strip()))
    return res

_HELP_RUNNER = r'''
import io, json, sys, contextlib, importlib
res = {}
for name, mod, fn in json.loads(sys.argv[1]):
    f = getattr(importlib.import_module(mod), fn)
    sys.argv = [name, '--help']
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf): f()   # as the console-script wrapper calls it, from __main__
        res[name] = None                              # returned without printing help: refuse to guess
    except SystemExit: res[name] = buf.getvalue()
print(json.dumps(res))
'''

def helps(scripts) -> dict:
    """Each console script's `--help`, produced by its own argument parser: the entry points are called
    exactly as the installed wrappers call them (from a `__main__` script, `sys.argv = [name, '--help']`),
    all in one process so torch is imported once. Runs in a scratch folder, with a timeout, so a command
    that ignored `--help` could not write into the checkout."""
    with tempfile.TemporaryDirectory() as tmp:
        runner = Path(tmp) / 'help_runner.py'
        runner.write_text(_HELP_RUNNER)
        path = os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep)
        env = {**os.environ, 'PYTHONPATH': path}
        r = subprocess.run([sys.executable, str(runner), json.dumps(scripts)], cwd=tmp, env=env,
                           capture_output=True, text=True, timeout=300)
    if r.returncode: sys.exit(f'docs: running the console scripts with --help failed:\n{r.stderr[-3000:]}')
    res = json.loads(r.stdout.strip().splitlines()[-1])
    bad = [n for n, h in res.items() if not h or 'usage:' not in h]
    if bad: sys.exit(f'docs: these console scripts printed no usage for --help: {", ".join(bad)}')
    return res


def _options(help_text: str) -> list[tuple[str, str]]:
    "(flag, description) for each option in an argparse help text (wrapped descriptions joined)."
    opts, cur = [], None
    heading = 'options:' if 'options:' in help_text else 'optional arguments:'  # Python 3.10+ | older argparse
    sect = help_text.split(heading, 1)[-1]
    for line in sect.splitlines():
        m = re.match(r'^  (-\S.*?)(?:\s{2,}(.*))?$', line)
        if m:
            cur = [m.group(1).strip(), (m.group(2) or '').strip()]; opts.append(cur)
        elif cur and line.startswith('   ') and line.strip(): cur[1] = (cur[1] + ' ' + line.strip()).strip()
        elif not line.strip(): cur = None
    return [tuple(o) for o in opts]


GUIDE_INTRO = '''# Training guide

How to train, on what, how long it takes, and what to do when something goes wrong. The option tables
below are generated when the site is built, by running every console script declared in `settings.ini`
with `--help`, so they always match the installed commands.
'''

GUIDE_SECTIONS = '''
## Expected time and memory

**2 CPU cores (no GPU).** The measured figures (dataset generation time, training time of all stages,
accuracy) are the ones on the [home page](index.html), section *What the main job gives* (the README is
made from the same notebook). They were measured with `nst4_quickstart` in a fresh clone on the 2-core
development machine, with the peak memory (peak RSS) of the run and, in the section *Speed and size on a
CPU*, the batch-1 latency and throughput of the trained model; this guide repeats no figures so that it cannot
disagree with them. Training memory does not grow with the dataset: the images are cached in a temporary file,
not in RAM (see `CachedScenes` in the perception notebook for the measured peak RSS at 6,000 and 20,000 images).

**NVIDIA T4 (16 GB, Colab).** Not yet measured. A T4 has fp16 tensor cores and no native bf16 (torch may
still report bf16 as supported, through emulation), so pass `--amp fp16` there. The Colab training tutorial
(`tutorials/train_colab`) picks the type from the GPU's compute capability: fp16 below 8.0, bf16 from 8.0 on.

## Several GPUs

`nst4_train` runs under `torchrun` with DistributedDataParallel, one process per GPU:

```sh
torchrun --nproc_per_node N $(which nst4_train) --data-root DIR --out-dir RUN
```

`$(which nst4_train)` gives torchrun the path of the installed script. Batch size is per process.

## Troubleshooting

**Out of disk during unzip.** Colab disks fill up when a large archive and its contents sit side by side.
`nst4_download` checks free disk before it writes and stops with a message that says how much is needed
and how much is free. Use `--dataset clevr_mini` (fetches only the zip members it needs, over HTTP Range
requests, not the whole archive), `--remove-archive` to delete archives once extracted, or a
`--data-root` on a larger disk (Google Drive in Colab).

**Flaky downloads and mirrors.** Downloads resume an interrupted `.part` file and verify checksums where
they are published; transient failures (timeouts, HTTP 408/425/429/5xx) are retried with a doubling
pause (`--retries`). After a hard failure re-run the same command: it continues where it stopped. When
the official host is down or slow, point `--mirror` (or `$NST4_MIRROR`) at a flat mirror of the official
files, or pass an archive you already have with `--archive`.

**CUDA out of memory.** Lower the batch size (`--batch-size`), keep mixed precision on (`--amp auto`;
fp16 on a T4), and free GPU memory held by other notebooks (in Colab: Runtime > Restart session). With
torchrun the batch size is per process.

**Resuming an interrupted run.** Re-run the same `nst4_train` command with the same `--out-dir`: it
resumes (the trainer checkpoints atomically to `last.pt` in each stage folder, with what an exact resume
needs). Use a new `--out-dir` to start from scratch.
'''


def guide(cfg) -> str:
    scripts = console_scripts(cfg)
    hs = helps(scripts)
    parts = [GUIDE_INTRO, '## Commands and their options\n']
    for name, mod, fn in scripts:
        h = hs[name]
        parts.append(f'### `{name}`\n\n`{mod}:{fn}` &mdash; generated from `{name} --help`:\n')
        rows = [f'| `{flag}` | {desc.replace("|", chr(92) + "|")} |' for flag, desc in _options(h)]
        if rows: parts.append('| option | meaning |\n|---|---|\n' + '\n'.join(rows) + '\n')
        parts.append('<details><summary>full <code>--help</code></summary>\n\n```text\n' + h.rstrip()
                     + '\n```\n\n</details>\n')
    # the hand-written sections may only name options that some command really has
    known = {f for h in hs.values() for f in re.findall(r'(?<![\w-])--[a-z][\w-]*', h)}
    stale = sorted(set(re.findall(r'(?<![\w-])--[a-z][\w-]*', GUIDE_SECTIONS)) - known - {'--nproc_per_node'})
    if stale: sys.exit('docs: the training guide names options no command has (update GUIDE_SECTIONS in '
                       f'.ci/docs_build.py): {", ".join(stale)}')
    parts.append(GUIDE_SECTIONS)
    return '\n'.join(parts)


# ---------------------------------------------------------------------------------------------- site
def build(out: Path, src: Path):
    t0 = time.time()
    cfg = get_config()
    nbs = Path(cfg.nbs_path)
    doc_url = f"{cfg.get('doc_host', '').rstrip('/')}{cfg.get('doc_baseurl', '')}".rstrip('/') + '/'
    if src.exists(): shutil.rmtree(src)
    docs = src / 'docs'; docs.mkdir(parents=True)
    import nbdev.doclinks
    nbdev.doclinks._build_modidx()   # as nbdev_docs does: symbol index for backtick links
    pages, kinds = [], {}
    for p in sorted(Path(f) for f in nbglob(nbs)):
        page = page_name(p, nbs)
        print(f'docs: {p.relative_to(ROOT)} -> {page}', flush=True)
        nb = read_nb(p); nb.path_ = str(p)
        exp = _default_exp(nb)
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter('always')
            DocsFilter()(nb)
        if any('imports and other code' in str(w.message) for w in ws):
            print(f'docs:   note: {p.name} has cells mixing imports with other code; only their imports ran',
                  flush=True)
        d, title = to_mkdocs_nb(nb, page, doc_url)
        dest = docs / page.with_suffix('.ipynb'); dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(d, indent=1))
        pages.append((page, title))
        kinds[page.as_posix()] = ('home' if page.as_posix() == 'index.html'
                                  else 'tutorial' if page.parts[0] == 'tutorials' else 'api' if exp else 'page')
    for p in sorted(nbs.rglob('*.md')):   # hand-written markdown pages in nbs/ (not README-like dot/underscore files)
        rel = p.relative_to(nbs)
        if any(s.startswith(('_', '.')) for s in rel.parts): continue
        dest = docs / rel; dest.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(p, dest)
        t = next((l[2:].strip() for l in p.read_text().splitlines() if l.startswith('# ')), rel.stem)
        pages.append((rel.with_suffix('.html'), t))
    print('docs: guide.md from the console scripts --help', flush=True)
    (docs / 'guide.md').write_text(guide(cfg))
    if (nbs / 'styles.css').exists(): shutil.copy2(nbs / 'styles.css', docs / 'styles.css')

    def entry(page, title):
        srcf = page.with_suffix('.ipynb') if (docs / page.with_suffix('.ipynb')).exists() else page.with_suffix('.md')
        return {title: srcf.as_posix()}
    home = [e for e in pages if e[0].as_posix() == 'index.html']
    top = [e for e in pages if len(e[0].parts) == 1 and e[0].as_posix() != 'index.html']
    nav = [{'Home': 'index.ipynb'}] if home else []
    nav += [entry(*e) for e in top] + [{'Training guide': 'guide.md'}]
    subs = sorted({e[0].parts[0] for e in pages if len(e[0].parts) > 1})
    for s in subs:
        section = [entry(*e) for e in pages if len(e[0].parts) > 1 and e[0].parts[0] == s]
        nav.append({s.replace('_', ' ').capitalize(): section})
    mk = {
        'site_name': cfg.get('title', cfg.lib_name), 'site_description': cfg.get('description', ''),
        'repo_url': cfg.get('git_url', ''), 'docs_dir': 'docs', 'site_dir': str(out.resolve()),
        'use_directory_urls': False,  # page.html, as Quarto names them, so nbdev's links work
        'theme': {'name': 'material', 'features': ['navigation.sections', 'content.code.copy'],
                  'palette': {'primary': 'indigo'}},
        'extra_css': ['styles.css'] if (docs / 'styles.css').exists() else [],
        'markdown_extensions': ['tables', 'admonition', 'md_in_html', 'pymdownx.details', 'pymdownx.superfences',
                                {'toc': {'permalink': True}}],
        'plugins': ['search', {'mkdocs-jupyter': {
            'execute': False,                 # stored outputs only; notebooks are never run by the build
            'include_source': True, 'ignore_h1_titles': True, 'include_requirejs': True,
            'remove_tag_config': {'remove_input_tags': ['remove_input']}}}],
        'nav': nav,
    }
    (src / 'mkdocs.yml').write_text(json.dumps(mk, indent=1))  # JSON is YAML
    if out.exists(): shutil.rmtree(out)
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '-q', '-f', str(src / 'mkdocs.yml')],
                       env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    if r.returncode: sys.exit('docs: mkdocs build failed (see above)')
    for h in out.rglob('*.html'):   # mkdocs-jupyter's template loads MathJax from an empty URL: drop that tag
        t = h.read_text()
        if '<script src=""> </script>' in t: h.write_text(t.replace('<script src=""> </script>', ''))
    kinds['guide.html'] = 'guide'
    listed = pages + [(Path('guide.html'), 'Training guide')]
    entries = [{'page': pg.as_posix(), 'title': t, 'kind': kinds.get(pg.as_posix(), 'page')} for pg, t in listed]
    (out / '_pages.json').write_text(json.dumps(entries, indent=1))
    print(f'docs: built {len(pages) + 1} pages into {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} '
          f'in {time.time() - t0:.0f} s', flush=True)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='_site', help='site folder (default: _site)')
    ap.add_argument('--src', default='_site_src', help='generated mkdocs sources (default: _site_src)')
    a = ap.parse_args()
    build((ROOT / a.out).resolve(), (ROOT / a.src).resolve())
