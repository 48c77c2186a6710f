#!/usr/bin/env bash
# Executes examples/t2v.ipynb (tslab kernel, nbconvert) on the tiny test model; fails if any cell errors.
# Needs Debian's jupyter-nbconvert and python3-nbclient (.ci/run installs them) and a built dist/ (npm test builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# tslab lives apart from the project: its TypeScript fork would take over node_modules/.bin/tsc
TSLAB_DIR=$ROOT/.tslab
if [ ! -x "$TSLAB_DIR/node_modules/.bin/tslab" ]; then
  mkdir -p "$TSLAB_DIR"
  [ -f "$TSLAB_DIR/package.json" ] || echo '{"private": true}' > "$TSLAB_DIR/package.json"
  npm install --prefix "$TSLAB_DIR" --no-audit --no-fund tslab@1.0.22
fi
export JUPYTER_PATH=$TSLAB_DIR/jupyter
mkdir -p "$JUPYTER_PATH/kernels/tslab"
cat > "$JUPYTER_PATH/kernels/tslab/kernel.json" <<JSON
{"argv": ["$TSLAB_DIR/node_modules/.bin/tslab", "kernel", "--config-path", "{connection_file}"],
 "display_name": "TypeScript", "language": "typescript"}
JSON
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
node "$ROOT/bin/t2v.js" convert test/fixtures/diffusers/hub "$WORK/model" --dtype float32 --no-progress
# the notebook runs where `t2v` is installed as a user would have it: node_modules/t2v is this checkout
mkdir -p "$WORK/node_modules"
ln -s "$ROOT" "$WORK/node_modules/t2v"
mkdir -p "$WORK/node_modules/@types"
ln -s "$ROOT/node_modules/@types/node" "$WORK/node_modules/@types/node"   # tslab type-checks each cell
cp examples/t2v.ipynb "$WORK/t2v.ipynb"
(cd "$WORK" && T2V_MODEL="$WORK/model" T2V_STEPS=2 jupyter nbconvert --to notebook --execute \
  --ExecutePreprocessor.timeout=600 --output executed.ipynb t2v.ipynb)
python3 - "$WORK/executed.ipynb" <<'PY'
import json, sys
nb = json.load(open(sys.argv[1]))
errors = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) if o.get('output_type') == 'error']
html = [o for c in nb['cells'] for o in c.get('outputs', []) if 'text/html' in o.get('data', {})]
if errors: sys.exit(f"notebook: a cell failed: {errors[0].get('ename')}: {errors[0].get('evalue')}")
if not any('data:image/gif;base64,' in ''.join(o['data']['text/html']) for o in html): sys.exit('notebook: no inline video shown')
print(f"notebook: {sum(c['cell_type'] == 'code' for c in nb['cells'])} code cells ran, the video is shown inline")
PY
