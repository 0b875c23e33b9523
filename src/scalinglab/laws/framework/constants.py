"""Published constants in one place: the PF-day, Kaplan et al. 2020's fitted laws, and Chinchilla's.

Every module that compares with the paper, converts FLOPs to PF-days or plans with the paper's numbers reads them
from here (laws, planner, report, FLOP accounting), so a correction is made once.
"""

from __future__ import annotations

PF_DAY = 8.64e19  # FLOPs in one petaflop/s-day: 1e15 FLOP/s x 86,400 s

# Fitted constants of each law as published (Kaplan et al. 2020 eqs 1.1-1.6, Tables 2-3, WebText2; C in PF-days;
# Chinchilla: Hoffmann et al. 2022 approach 3), keyed by registry name.
PAPER_LAWS: dict[str, dict[str, float]] = {
    "kaplan-n": {"alpha_N": 0.076, "N_c": 8.8e13},  # eq 1.1
    "kaplan-d": {"alpha_D": 0.095, "D_c": 5.4e13},  # eq 1.2 (tokens)
    "kaplan-cmin": {"alpha_C": 0.050, "C_c": 3.1e8},  # eq 1.3 (PF-days)
    "kaplan-c": {"alpha_C": 0.057, "C_c": 1.6e7},  # eq 3.3, fixed batch (PF-days)
    "bcrit": {"B_star": 2e8, "alpha_B": 0.21},  # eq 1.4 (tokens)
    "kaplan-nd": {"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13},  # eq 1.5, Table 2
    "kaplan-ns": {"alpha_N": 0.077, "alpha_S": 0.76, "N_c": 6.5e13, "S_c": 2.1e3},  # eq 1.6, Table 3
    "chinchilla": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},  # Hoffmann et al. eq 10
}
TABLE2 = PAPER_LAWS["kaplan-nd"]
TABLE3 = PAPER_LAWS["kaplan-ns"]

# Kaplan eq 1.7 / §6 compute-efficient allocation (C in PF-days) and the laws the planner combines with it.
PAPER_PLAN: dict[str, float] = {
    "N_coef": 1.3e9, "N_exp": 0.73,  # N_opt = 1.3e9·C^0.73
    "B_coef": 2e6, "B_exp": 0.24,  # B_crit = 2e6·C^0.24 tokens
    "S_coef": 5.4e3, "S_exp": 0.03,  # S_min = 5.4e3·C^0.03
    "D_coef": 2e10, "D_exp": 0.27,  # D = 2e10·C^0.27 tokens
    "alpha_Cmin": PAPER_LAWS["kaplan-cmin"]["alpha_C"], "C_c_min": PAPER_LAWS["kaplan-cmin"]["C_c"],
    "alpha_D": PAPER_LAWS["kaplan-d"]["alpha_D"], "D_c": PAPER_LAWS["kaplan-d"]["D_c"],
    "alpha_N": PAPER_LAWS["kaplan-n"]["alpha_N"], "N_c": PAPER_LAWS["kaplan-n"]["N_c"],
    "B_star": PAPER_LAWS["bcrit"]["B_star"], "alpha_B": PAPER_LAWS["bcrit"]["alpha_B"],
}
