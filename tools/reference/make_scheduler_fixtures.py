"""diffusers' DPMSolverMultistepScheduler, EulerDiscreteScheduler and UniPCMultistepScheduler on fixed model outputs.

The schedulers are diffusers' own modules, executed from a diffusers source tree (never copied into this repository)
with the imports they do not need at run time (huggingface_hub, the utils package) replaced by small stand-ins; the
real configuration_utils (register_to_config, from_config) and scheduling_utils run. PyTorch 1.13 is enough:

  DIFFUSERS_SRC=/work/.mirror/huggingface+diffusers/repo /usr/bin/python3 tools/reference/make_scheduler_fixtures.py

DIFFUSERS_SRC is a diffusers checkout, its src/ folder, or a bare git directory of one (read with `git show HEAD:`).
Writes test/fixtures/schedulers/: the training tables, and per case the timesteps, sigmas, init_noise_sigma, the model
outputs fed to every step, each step's model input (scale_model_input), x0 estimate and prev_sample.
"""
import json
import operator
import os
import subprocess
import sys
import types

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'schedulers')
SHAPE = (1, 4, 2, 4, 4)  # [b, c, f, h, w], the upstream latent layout

# damo-vilab/text-to-video-ms-1.7b's scheduler/scheduler_config.json (a DDIMScheduler config; it has no
# timestep_spacing, so DDIMScheduler runs its default "leading").
MS_DDIM_CONFIG = {
    '_class_name': 'DDIMScheduler', '_diffusers_version': '0.15.0.dev0', 'beta_end': 0.012,
    'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'clip_sample': False, 'num_train_timesteps': 1000,
    'prediction_type': 'epsilon', 'set_alpha_to_one': False, 'skip_prk_steps': True, 'steps_offset': 1,
    'trained_betas': None,
}


# ----------------------------------------------------------------------------------------------------------------
# diffusers' scheduler modules with their hub and utils imports stood in for

def diffusers_source(rel: str) -> str:
    src = os.environ.get('DIFFUSERS_SRC')
    if not src:
        sys.exit('set DIFFUSERS_SRC to a diffusers checkout, its src/ folder or a git directory')
    for base in (os.path.join(src, 'src', 'diffusers'), os.path.join(src, 'diffusers')):
        if os.path.exists(os.path.join(base, rel)):
            with open(os.path.join(base, rel)) as f:
                return f.read()
    return subprocess.run(['git', '-C', src, 'show', f'HEAD:src/diffusers/{rel}'], check=True, capture_output=True,
                          text=True).stdout


def stub(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def load(name: str, rel: str) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__file__ = rel
    m.__package__ = name.rsplit('.', 1)[0]
    sys.modules[name] = m
    exec(compile(diffusers_source(rel), rel, 'exec'), m.__dict__)
    return m


def torch_version(op: str, v: str) -> bool:
    parse = lambda s: tuple(int(p) for p in s.split('+')[0].split('a')[0].split('.')[:2])  # noqa: E731
    ops = {'<': operator.lt, '<=': operator.le, '>': operator.gt, '>=': operator.ge, '==': operator.eq}
    return ops[op](parse(torch.__version__), parse(v))


def never(what: str):
    def f(*args, **kwargs):
        raise RuntimeError(f'{what} reached: these fixtures take no deprecated path and draw no noise')
    return f


def load_schedulers() -> dict:
    class HubError(Exception):
        pass

    class Logging:
        get_logger = staticmethod(lambda name: __import__('logging').getLogger(name))

    stub('huggingface_hub', DDUFEntry=object, create_repo=never('create_repo'), hf_hub_download=never('download'))
    stub('huggingface_hub.utils', EntryNotFoundError=HubError, HfHubHTTPError=HubError,
         RepositoryNotFoundError=HubError, RevisionNotFoundError=HubError, validate_hf_hub_args=lambda f: f)
    pkg = stub('diffusers', __version__='0.40.0.dev0', __path__=[])
    stub('diffusers.schedulers', __path__=[])
    utils = stub('diffusers.utils', __path__=[])
    stub('diffusers.utils.import_utils', is_torch_available=lambda: True, is_torch_version=torch_version)
    outputs = load('diffusers.utils.outputs', 'utils/outputs.py')
    utils.__dict__.update(
        BaseOutput=outputs.BaseOutput, PushToHubMixin=type('PushToHubMixin', (), {}), HUGGINGFACE_CO_RESOLVE_ENDPOINT='',
        DummyObject=type('DummyObject', (type,), {}), deprecate=never('deprecate'), extract_commit_hash=None,
        http_user_agent=None, logging=Logging, is_scipy_available=lambda: False)
    stub('diffusers.utils.torch_utils', randn_tensor=never('randn_tensor'))
    load('diffusers.configuration_utils', 'configuration_utils.py')
    load('diffusers.schedulers.scheduling_utils', 'schedulers/scheduling_utils.py')
    classes = {}
    for cls, rel in [('DDIMScheduler', 'scheduling_ddim'), ('DPMSolverMultistepScheduler', 'scheduling_dpmsolver_multistep'),
                     ('EulerDiscreteScheduler', 'scheduling_euler_discrete'),
                     ('UniPCMultistepScheduler', 'scheduling_unipc_multistep')]:
        m = load(f'diffusers.schedulers.{rel}', f'schedulers/{rel}.py')
        classes[cls] = getattr(m, cls)
        setattr(pkg, cls, classes[cls])  # from_config looks the original class up on the package
    return classes


# ----------------------------------------------------------------------------------------------------------------
# runs

def save_npy(path: str, a) -> None:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    np.save(path, np.ascontiguousarray(a))


def save_json(path: str, obj) -> None:
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1)
        f.write('\n')


NAMES = {'dpm-solver++': 'DPMSolverMultistepScheduler', 'euler': 'EulerDiscreteScheduler',
         'unipc': 'UniPCMultistepScheduler'}


def make_scheduler(S: dict, name: str, spacing, karras: bool, prediction: str, betas: str = 'scaled_linear'):
    """`X.from_config(pipe.scheduler.config)` with the DDIM scheduler the ms-1.7b folder loads, as diffusers' docs
    swap schedulers. spacing None keeps what from_config gives (the class default, since the hub config has none)."""
    ddim = S['DDIMScheduler'].from_config({**MS_DDIM_CONFIG, 'prediction_type': prediction, 'beta_schedule': betas})
    kwargs = {'use_karras_sigmas': karras}
    if spacing is not None:
        kwargs['timestep_spacing'] = spacing
    if name == 'dpm-solver++':  # the settings the issue names, all diffusers' defaults
        kwargs.update(algorithm_type='dpmsolver++', solver_order=2, solver_type='midpoint', lower_order_final=True,
                      euler_at_final=False, final_sigmas_type='zero')
    elif name == 'unipc':
        kwargs.update(solver_type='bh2', solver_order=2, predict_x0=True, lower_order_final=True)
    return S[NAMES[name]].from_config(ddim.config, **kwargs)


def run_case(S: dict, case: dict, seed: int) -> dict:
    name, steps = case['scheduler'], case['steps']
    s = make_scheduler(S, name, case.get('spacing'), case.get('karras', False), case.get('prediction', 'epsilon'),
                       case.get('betas', 'scaled_linear'))
    s.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(SHAPE, generator=g)
    # a fixed sequence of model outputs, correlated with the starting noise as a trained model's would be
    outputs = torch.stack([0.8 * noise + 0.6 * torch.randn(SHAPE, generator=g) for _ in range(len(s.timesteps))])
    begin = case.get('strength')
    config = {k: (v if not isinstance(v, float) or np.isfinite(v) else str(v)) for k, v in s.config.items()}  # JSON
    config['_use_default_values'] = sorted(config.get('_use_default_values', []))  # a set: stable files
    out = {'case': case, 'config': config, 'timesteps': s.timesteps.tolist(),
           'sigmas': s.sigmas.tolist(), 'init_noise_sigma': float(s.init_noise_sigma)}
    arrays = {'noise': noise, 'model_outputs': outputs}
    if begin is None:
        start = 0
        latents = noise * s.init_noise_sigma
    else:  # VideoToVideoSDPipeline.get_timesteps / prepare_latents
        init_timestep = min(int(steps * begin), steps)
        start = max(steps - init_timestep, 0) * s.order
        s.set_begin_index(start)
        clean = 0.7 * torch.randn(SHAPE, generator=g)
        latents = s.add_noise(clean, noise, s.timesteps[start:start + 1])
        arrays['clean'] = clean
    out['begin_index'] = start
    arrays['latents'] = latents

    x0s = []
    convert = getattr(s, 'convert_model_output', None)
    if convert is not None:
        def recording(*args, **kwargs):
            x0 = convert(*args, **kwargs)
            x0s.append(x0.clone())
            return x0
        s.convert_model_output = recording
    scaled, prevs, x = [], [], latents
    for i in range(start, len(s.timesteps)):
        t = s.timesteps[i]
        scaled.append(s.scale_model_input(x, t))
        r = s.step(outputs[i], t, x, return_dict=True)
        if hasattr(r, 'pred_original_sample') and r.pred_original_sample is not None:
            x0s.append(r.pred_original_sample)
        prevs.append(r.prev_sample)
        x = r.prev_sample
    arrays.update(x0=torch.stack(x0s), prev=torch.stack(prevs))
    if name == 'euler':  # the others return their input unchanged
        arrays['scaled'] = torch.stack(scaled)
    assert all(a.dtype == torch.float32 for a in arrays.values())
    return out, arrays


CASES = []
for sched, (long, short) in {'dpm-solver++': (25, 7), 'euler': (20, 5), 'unipc': (20, 5)}.items():
    for steps in (long, short):
        for karras in (False, True):
            CASES.append({'scheduler': sched, 'steps': steps, 'spacing': 'leading', 'karras': karras})
    CASES.append({'scheduler': sched, 'steps': long, 'spacing': None})  # from_config as-is: the class default
    CASES.append({'scheduler': sched, 'steps': short, 'spacing': 'trailing'})
    CASES.append({'scheduler': sched, 'steps': short, 'spacing': 'leading', 'prediction': 'v_prediction'})
    CASES.append({'scheduler': sched, 'steps': long, 'spacing': 'leading', 'strength': 0.6})
    CASES.append({'scheduler': sched, 'steps': short, 'spacing': 'leading', 'karras': True, 'strength': 0.6})
CASES.append({'scheduler': 'dpm-solver++', 'steps': 50, 'spacing': 'leading'})  # the longest run: error growth
CASES.append({'scheduler': 'unipc', 'steps': 5, 'spacing': 'leading', 'betas': 'linear'})


def case_id(c: dict) -> str:
    parts = [c['scheduler'].replace('++', 'pp'), str(c['steps']), c.get('spacing') or 'default']
    if c.get('karras'):
        parts.append('karras')
    if c.get('prediction'):
        parts.append('v')
    if c.get('betas'):
        parts.append(c['betas'])
    if c.get('strength') is not None:
        parts.append(f"s{c['strength']}")
    return '-'.join(parts)


@torch.no_grad()
def main() -> None:
    S = load_schedulers()
    if os.path.isdir(OUT):
        __import__('shutil').rmtree(OUT)
    os.makedirs(OUT)
    ref = make_scheduler(S, 'euler', 'leading', False, 'epsilon')
    save_npy(os.path.join(OUT, 'betas.npy'), ref.betas)
    save_npy(os.path.join(OUT, 'alphas_cumprod.npy'), ref.alphas_cumprod)
    index = []
    for k, case in enumerate(CASES):
        cid = case_id(case)
        meta, arrays = run_case(S, case, 1000 + k)
        d = os.path.join(OUT, cid)
        os.makedirs(d, exist_ok=True)
        for key, a in arrays.items():
            save_npy(os.path.join(d, f'{key}.npy'), a)
        save_json(os.path.join(d, 'case.json'), meta)
        index.append(cid)
        print(cid, 'spacing', meta['config']['timestep_spacing'], 'timesteps', meta['timesteps'][:4], '...')
    save_json(os.path.join(OUT, 'cases.json'), {'shape': list(SHAPE), 'cases': index})


if __name__ == '__main__':
    main()
