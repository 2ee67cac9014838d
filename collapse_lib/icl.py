"""In-context learning under recursive training (course chapter 9; the paper's second open extension).

Setting (linear regression in context, as in Garg et al. 2022, Zhang, Frei & Bartlett 2023 and
Wu et al. 2024). A task is beta ~ N(0, I_d); an example is x ~ N(0, I_d) with label
y = <beta, x> + eps, eps ~ N(0, sigma^2). A *sequence* of a task holds N + 1 labelled examples.
The model is one layer of linear self-attention, which (after the reduction of Zhang et al.)
predicts the label of a query x_q from N context examples as

    y_hat = x_q^T Gamma h,        h = (1/N) sum_{i <= N} y_i x_i .                          (I1)

Pretraining fits Gamma by least squares, every example of a sequence serving once as the query
with the other N as its context (the loss at every position, as in GPT training). Its population
optimum is

    Gamma* = E[t h^T] E[h h^T]^{-1},                                                         (I2)

with t the task behind the query's label.

The loop (:class:`ICLSetting`). The tasks and the x's are real; labels are either real or written
by the previous generation. Generation 1 is pretrained on real sequences. Generation m writes the
sequences of generation m + 1: for each task it reads N examples of the task's current sequence
(a prompt, as in training), forms its in-context estimate beta_tilde = Gamma_m h, and labels
fresh x's with y = <beta_tilde, x> + xi, xi ~ N(0, writer_sigma^2): its prediction plus sampling
noise, the analogue of sampling from the fitted model. K of the N + 1 labels of every later
sequence stay real (K = 0: fully synthetic; K = N + 1: real data only).

Theory (isotropy makes Gamma = g I). Let rho = E<beta_tilde, beta>/d and c = E||beta_tilde||^2/d
be the overlap and the size of the written tasks. A context with r real and N - r synthetic labels
has E[h h^T] = Q_r I and E[beta h^T] = L_r I, E[beta_tilde h^T] = P_r I, where

    Q_r = [r(r+1+d) + 2r(N-r) rho + (N-r)(N-r+1+d) c + r sigma^2 + (N-r) writer_sigma^2] / N^2,
    L_r = (r + (N - r) rho) / N,         P_r = (r rho + (N - r) c) / N.                     (I3)

With q = K / (N + 1) the chance that the query's label is real (then the context has K - 1
real labels, else K),

    g' = [q L_{K-1} + (1-q) P_K] / D,      D = q Q_{K-1} + (1-q) Q_K,
    rho' = g' [q L_{K-1} + (1-q) L_K],     c' = g'^2 D.                                     (I4)

The in-context risk of Gamma on real prompts is

    R(Gamma) = sigma^2 + d - 2 tr Gamma + a ||Gamma||_F^2,   a = (N + 1 + d + sigma^2) / N.   (I5)

Fully synthetic (K = 0) the map closes on u = writer_sigma^2 / (N c), an effective ridge:

    g_m = 1 / (b + u_{m-1}),   u_m = u_{m-1} (b + u_{m-1}),   b = (N + 1 + d) / N,          (I6)

with g_1 = 1 / a and u_1 = writer_sigma^2 a / N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _validate as V

__all__ = [
    "ICLSetting",
    "Recursion",
    "recursion",
    "effective_ridge",
    "real_risk",
    "gain_lower_bound",
    "ICLRun",
    "simulate",
    "fit_closed",
    "fit_trained",
    "TrainedFit",
]


# ----------------------------------------------------------------------------- the setting
@dataclass(frozen=True)
class ICLSetting:
    """Dimension d, prompt length N, label noise sigma, K real labels of every sequence's N + 1
    (generations >= 2), and the writer's sampling noise (``None``: sigma)."""

    d: int
    N: int
    sigma: float
    K: int = 0
    writer_sigma: float | None = None
    sw: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "d", V.integer("d", self.d, minimum=1, maximum=10_000))
        object.__setattr__(self, "N", V.integer("N", self.N, minimum=1, maximum=10**9))
        object.__setattr__(self, "sigma", V.real("sigma", self.sigma, low=0.0))
        object.__setattr__(self, "K", V.integer("K", self.K, minimum=0, maximum=self.N + 1))
        sw = self.sigma if self.writer_sigma is None else V.real("writer_sigma", self.writer_sigma, low=0.0)
        object.__setattr__(self, "sw", sw)

    @property
    def a(self) -> float:
        """E||h||^2 / d on real prompts: (N + 1 + d + sigma^2) / N, eq. (I5)."""
        return (self.N + 1 + self.d + self.sigma**2) / self.N

    @property
    def b(self) -> float:
        """(N + 1 + d) / N, eq. (I6): the per-generation shrink factor of noise-free labels."""
        return (self.N + 1 + self.d) / self.N


def _moments(s: ICLSetting, r: int, rho: float, c: float) -> tuple[float, float, float]:
    """(Q_r, L_r, P_r) of eq. (I3) for a context with r real labels."""
    N, d = s.N, s.d
    Q = (r * (r + 1 + d) + 2 * r * (N - r) * rho + (N - r) * (N - r + 1 + d) * c
         + r * s.sigma**2 + (N - r) * s.sw**2) / N**2
    return Q, (r + (N - r) * rho) / N, (r * rho + (N - r) * c) / N


def _step(s: ICLSetting, K: int, rho: float, c: float) -> tuple[float, float, float]:
    """One generation of eq. (I4): (g of the model fitted on sequences with K real labels, and the
    rho, c of the tasks that this model writes)."""
    N = s.N
    q = K / (N + 1)
    num = den = lin = 0.0
    if K >= 1:                                        # the query's label is real
        Q, L, _ = _moments(s, K - 1, rho, c)
        num, den, lin = num + q * L, den + q * Q, lin + q * L
    if K <= N:                                        # the query's label is synthetic
        Q, L, P = _moments(s, K, rho, c)
        num, den, lin = num + (1 - q) * P, den + (1 - q) * Q, lin + (1 - q) * L
    if den == 0.0:                                    # only when every label is 0: nothing to learn
        return 0.0, 0.0, 0.0
    g = num / den
    return g, g * lin, g * g * den


@dataclass
class Recursion:
    """Population recursion, indexed by generation m = 0..G (m = 0: the real data, g and risk NaN):
    gain g_m (Gamma_m = g_m I), overlap rho_m and size c_m of the tasks generation m writes, and the
    in-context risk R(Gamma_m) on real prompts, eq. (I5)."""

    setting: ICLSetting
    g: np.ndarray
    rho: np.ndarray
    c: np.ndarray
    risk: np.ndarray


def recursion(setting: ICLSetting, generations: int) -> Recursion:
    """Iterate eq. (I4): generation 1 on real sequences (every label real), then K real labels."""
    if not isinstance(setting, ICLSetting):
        raise V.ArgumentTypeError(f"setting must be an ICLSetting, got {type(setting).__name__}")
    G = V.integer("generations", generations, minimum=1, maximum=10**6)
    g = np.full(G + 1, np.nan)
    rho, c = np.ones(G + 1), np.ones(G + 1)
    for m in range(1, G + 1):
        K = setting.N + 1 if m == 1 else setting.K
        g[m], rho[m], c[m] = _step(setting, K, rho[m - 1], c[m - 1])
    risk = np.full(G + 1, np.nan)
    risk[1:] = real_risk(g[1:, None, None] * np.eye(setting.d), setting)
    return Recursion(setting, g, rho, c, risk)


def effective_ridge(setting: ICLSetting, generations: int) -> np.ndarray:
    """u_m, m = 0..G, of eq. (I6) (fully synthetic loop; K is ignored): u_0 = sigma^2 / N, u_1 =
    writer_sigma^2 a / N, u_m = u_{m-1}(b + u_{m-1}); the gains are g_m = 1 / (b + u_{m-1}).
    Grows without bound (inf once it overflows) when writer_sigma > 0."""
    if not isinstance(setting, ICLSetting):
        raise V.ArgumentTypeError(f"setting must be an ICLSetting, got {type(setting).__name__}")
    G = V.integer("generations", generations, minimum=1, maximum=10**6)
    u = np.empty(G + 1)
    u[0] = setting.sigma**2 / setting.N
    u[1] = setting.sw**2 * setting.a / setting.N
    with np.errstate(over="ignore"):
        for m in range(2, G + 1):
            u[m] = u[m - 1] * (setting.b + u[m - 1])
    return u


def real_risk(gamma, setting: ICLSetting) -> np.ndarray | float:
    """R(Gamma) = sigma^2 + d - 2 tr Gamma + a ||Gamma||_F^2, eq. (I5): the expected squared error
    of (I1) on a real prompt, for matrices ``gamma`` of shape (..., d, d)."""
    if not isinstance(setting, ICLSetting):
        raise V.ArgumentTypeError(f"setting must be an ICLSetting, got {type(setting).__name__}")
    G = V.real_array("gamma", gamma, ndim=None)
    d = setting.d
    if G.ndim < 2 or G.shape[-2:] != (d, d):
        raise V.InvalidArgument(f"gamma must have shape (..., {d}, {d}) (d = {d}), got {G.shape}")
    tr, fro = np.trace(G, axis1=-2, axis2=-1), (G**2).sum(axis=(-2, -1))
    out = setting.sigma**2 + d - 2 * tr + setting.a * fro
    return float(out) if np.ndim(out) == 0 else out


def gain_lower_bound(setting: ICLSetting) -> float:
    """A floor on g_m for m >= 2 when K >= 2: K (K - 1) / (N (N + 1) Q*), with Q* the largest
    denominator of (I4) over rho, c in [0, 1] (proof in the chapter); 0 when K <= 1."""
    if not isinstance(setting, ICLSetting):
        raise V.ArgumentTypeError(f"setting must be an ICLSetting, got {type(setting).__name__}")
    K, N = setting.K, setting.N
    if K <= 1:
        return 0.0
    q = K / (N + 1)
    den = q * _moments(setting, K - 1, 1.0, 1.0)[0] + (1 - q) * (_moments(setting, K, 1.0, 1.0)[0] if K <= N else 0.0)
    return q * (K - 1) / N / den


# ----------------------------------------------------------------------------- data and fits
def _contexts(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """h for every example of every sequence used as the query, the other N as the context:
    (T, N + 1, d)."""
    N = X.shape[1] - 1
    H = np.einsum("tn,tnd->td", Y, X)
    return (H[:, None, :] - Y[..., None] * X) / N


def fit_closed(X, Y) -> np.ndarray:
    """Least-squares Gamma (d, d) of (I1) on sequences X (T, N + 1, d), Y (T, N + 1): every
    example is the query once (features vec(x_q h^T)), solved from the normal equations."""
    X = V.real_array("X (inputs, shape (T, N + 1, d))", X, ndim=(3,))
    Y = V.real_array("Y (labels, shape (T, N + 1))", Y, ndim=(2,))
    if Y.shape != X.shape[:2] or X.shape[1] < 2:
        raise V.InvalidArgument(f"Y must have shape X.shape[:2] = {X.shape[:2]} with N + 1 >= 2, got {Y.shape}")
    d = X.shape[2]
    Z = np.einsum("tni,tnj->tnij", X, _contexts(X, Y)).reshape(-1, d * d)
    A, rhs = Z.T @ Z, Z.T @ Y.reshape(-1)
    return np.linalg.lstsq(A, rhs, rcond=None)[0].reshape(d, d)


@dataclass
class TrainedFit:
    """A trained linear self-attention layer: its effective Gamma (eq. (I1)), the size of its
    other two terms (which carry no information on the label and should vanish), and its final
    training loss."""

    gamma: np.ndarray
    extra_norm: float
    loss: float


def fit_trained(X, Y, steps: int = 300, lr: float = 0.05, seed=0) -> TrainedFit:
    """Train one layer of linear self-attention by full-batch gradient descent (Adam) in torch.

    With z = (x, y) in R^{d+1} and G = (1/N) sum_ctx z z^T, the layer predicts
    y_hat = w^T G M x_q (w: last row of W^{PV}; M: the first d columns of W^{KQ}, as in Zhang,
    Frei & Bartlett 2023), every example being the query once. Expanding,
    y_hat = x_q^T (w_y M_x^T + m_y w_x^T) h + x_q^T (M_x^T S w_x + m_y s_yy w_y): the first term is
    (I1) with Gamma = w_y M_x^T + m_y w_x^T. As in Zhang et al., the weights that mix x and y
    start at 0 (w_x = 0, m_y = 0; w_y = 0.5, M_x small and random): from a generic random start,
    gradient descent can stall at a rank-one Gamma = m_y w_x^T with w_y = 0.
    """
    import torch

    X = V.real_array("X (inputs, shape (T, N + 1, d))", X, ndim=(3,))
    Y = V.real_array("Y (labels, shape (T, N + 1))", Y, ndim=(2,))
    if Y.shape != X.shape[:2] or X.shape[1] < 2:
        raise V.InvalidArgument(f"Y must have shape X.shape[:2] = {X.shape[:2]} with N + 1 >= 2, got {Y.shape}")
    steps = V.integer("steps", steps, minimum=1)
    lr = V.real("lr", lr, low=0.0, low_open=True)
    d, N = X.shape[2], X.shape[1] - 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # tiny tensors: one thread is several times faster than two
    try:
        return _train(torch, X, Y, steps, lr, seed, d, N)
    finally:
        torch.set_num_threads(threads)


def _train(torch, X, Y, steps, lr, seed, d, N) -> TrainedFit:
    """The training loop of :func:`fit_trained` (arguments checked there)."""
    gen = torch.Generator().manual_seed(int(V.rng_from_seed("seed", seed).integers(2**31)))
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    Zt = torch.cat([Xt, Yt[..., None]], dim=-1)                         # (T, N+1, d+1)
    Gfull = torch.einsum("tni,tnj->tij", Zt, Zt)                        # sum over the sequence
    w = torch.zeros(d + 1, dtype=torch.float64)
    w[d] = 0.5                                                          # w_x = 0, w_y = 0.5
    M = torch.zeros(d + 1, d, dtype=torch.float64)
    M[:d] = 0.1 * torch.randn(d, d, generator=gen, dtype=torch.float64)   # M_x random, m_y = 0
    w.requires_grad_()
    M.requires_grad_()
    opt = torch.optim.Adam([w, M], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)

    def loss_fn() -> torch.Tensor:
        Gw = torch.einsum("tij,j->ti", Gfull, w)[:, None, :] - Zt * (Zt @ w)[..., None]   # (T,N+1,d+1)
        pred = ((Gw @ M) * Xt).sum(dim=-1) / N
        return ((Yt - pred) ** 2).mean()

    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        wx, wy, Mx, my = w[:d], w[d], M[:d], M[d]
        gamma = (wy * Mx.T + torch.outer(my, wx)).numpy().copy()
        extra = float(torch.sqrt((Mx.T @ wx).pow(2).sum() + (my * wy).pow(2).sum()))
        final = float(loss_fn())
    return TrainedFit(gamma, extra, final)


@dataclass
class ICLRun:
    """Simulated loop, arrays indexed (run, generation m = 0..G), m = 0 being the real data:
    fitted Gamma_m (runs, G+1, d, d) (NaN at m = 0), its gain g_m = tr Gamma_m / d, its exact
    in-context risk on real prompts (I5), and the overlap rho_m and size c_m of the tasks that
    generation m writes (sample means over the tasks)."""

    setting: ICLSetting
    gamma: np.ndarray
    g: np.ndarray
    risk: np.ndarray
    rho: np.ndarray
    c: np.ndarray

    def mean_se(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean over runs and its standard error, per generation."""
        x = getattr(self, name)
        R = x.shape[0]
        se = x.std(axis=0, ddof=1) / math.sqrt(R) if R > 1 else np.full(x.shape[1:], np.nan)
        return x.mean(axis=0), se


def simulate(setting: ICLSetting, generations: int, tasks: int, runs: int = 1, seed=None,
             fit: str = "closed", steps: int = 300) -> ICLRun:
    """Run the loop of the module docstring ``runs`` times with ``tasks`` real tasks.

    Each generation draws fresh x's; generation 1 fits real sequences, and generation m writes the
    N + 1 - K synthetic labels of each task's next sequence from N examples of its current one (one
    example, chosen at random, left out), keeping K labels real. ``fit="closed"`` uses
    :func:`fit_closed`, ``"trained"`` :func:`fit_trained` with ``steps`` steps.
    """
    if not isinstance(setting, ICLSetting):
        raise V.ArgumentTypeError(f"setting must be an ICLSetting, got {type(setting).__name__}")
    G = V.integer("generations", generations, minimum=1, maximum=10**5)
    T = V.integer("tasks", tasks, minimum=2)
    R = V.integer("runs", runs, minimum=1)
    V.choice("fit", fit, ("closed", "trained"))
    d, N, K = setting.d, setting.N, setting.K
    V.check_memory("tasks", 8.0 * T * (N + 1) * d * (d * d + 2), "the least-squares features")
    rng = V.rng_from_seed("seed", seed)
    gamma = np.full((R, G + 1, d, d), np.nan)
    rho, c = np.ones((R, G + 1)), np.ones((R, G + 1))
    for r in range(R):
        beta = rng.standard_normal((T, d))
        X = rng.standard_normal((T, N + 1, d))
        Y = np.einsum("tnd,td->tn", X, beta) + setting.sigma * rng.standard_normal((T, N + 1))
        for m in range(1, G + 1):
            if fit == "closed":
                gm = fit_closed(X, Y)
            else:
                gm = fit_trained(X, Y, steps=steps, seed=rng).gamma
            gamma[r, m] = gm
            leave = rng.integers(N + 1, size=T)                       # the example left out of the prompt
            keep = np.ones((T, N + 1), bool)
            keep[np.arange(T), leave] = False
            h = np.einsum("tn,tnd->td", np.where(keep, Y, 0.0), X) / N
            written = h @ gm.T                                        # beta_tilde = Gamma_m h
            rho[r, m] = np.mean(np.einsum("td,td->t", written, beta)) / d
            c[r, m] = np.mean(np.einsum("td,td->t", written, written)) / d
            X = rng.standard_normal((T, N + 1, d))
            Y = np.einsum("tnd,td->tn", X, written) + setting.sw * rng.standard_normal((T, N + 1))
            if K:                                                     # K real labels per sequence
                Y[:, :K] = (np.einsum("tnd,td->tn", X[:, :K], beta)
                            + setting.sigma * rng.standard_normal((T, K)))
    g = np.trace(gamma, axis1=-2, axis2=-1) / d
    risk = np.full((R, G + 1), np.nan)
    risk[:, 1:] = real_risk(gamma[:, 1:], setting)
    return ICLRun(setting, gamma, g, risk, rho, c)
