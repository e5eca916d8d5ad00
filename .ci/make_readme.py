"""Write README.md from nbs/index.ipynb without quarto: markdown cells as they are, code cells as Python
blocks with their text outputs (a `#| echo: false` cell without its code; markdown outputs as markdown).
`--check` fails when README.md is out of date."""
import sys
from pathlib import Path
from execnb.nbio import read_nb

def _outputs(cell):
    "Text outputs of a code cell as one string."
    texts = []
    for o in cell.get('outputs', []):
        data = o.get('data', {})
        if 'text' in o: texts.append(''.join(o['text']))
        elif 'text/plain' in data and 'text/html' not in data and 'text/markdown' not in data:
            texts.append(''.join(data['text/plain']))
    return ''.join(texts).rstrip()

def _markdown_outputs(cell):
    "Markdown outputs of a code cell (`IPython.display.Markdown`), as one string."
    return '\n\n'.join(''.join(o['data']['text/markdown']).strip() for o in cell.get('outputs', [])
                        if 'text/markdown' in o.get('data', {}))

def render(nb_path='nbs/index.ipynb') -> str:
    "README markdown for the notebook at `nb_path`."
    parts = []
    for cell in read_nb(nb_path).cells:
        lines = [l for l in cell.source.splitlines() if not l.startswith('#|')]
        if any(l.strip() == '#| hide' for l in cell.source.splitlines()) or not lines: continue
        if cell.cell_type == 'markdown': parts.append('\n'.join(lines))
        else:
            if not any(l.replace(' ', '') == '#|echo:false' for l in cell.source.splitlines()):
                parts.append('```python\n' + '\n'.join(lines) + '\n```')
            if out := _outputs(cell): parts.append('```\n' + out + '\n```')
            if md := _markdown_outputs(cell): parts.append(md)
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), Path('README.md')
    if '--check' in sys.argv:
        if readme.read_text() != text: sys.exit('README.md is out of date: run `python .ci/make_readme.py`')
    else: readme.write_text(text)
