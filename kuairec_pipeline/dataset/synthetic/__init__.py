"""The synthetic twin of KuaiRec 2.0: the pipeline's default data source.

``generate_twin(out_dir, profile, seed)`` writes the official file set, with the official names, headers,
column order, formats and traps (docs/KUAIREC.md), into ``out_dir/KuaiRec 2.0/data/``, and the planted truth into
``out_dir/_truth/``:
- ``expected_small.parquet``: for every distinct small_matrix (user_id, video_id) pair, the exact
  ``expected_watch_ratio`` (E[wr]), ``expected_watch_ratio_le3`` (E[wr | wr <= 3]) and ``prob_watch_ratio_gt2``
  (P(wr > 2)) under the generating model, averaged over the pair's rows;
- ``params.json``: profile, seed, sizes, generator version and every behaviour parameter. It is written last:
  its presence marks a complete twin.

How the data are made:
- a view's log engagement ``eta`` = user part (observable one-hots + latent bias) + video part (duration:
  shorter is better, tags, author, latent quality) + taste (latent factors, user x tag affinity, user x
  duration) + a sequential part (the tags of the user's last few views shift the next one);
- exposure in big_matrix follows popularity (long tail) and taste; small_matrix is a dense block whose pairs
  were removed from big_matrix;
- the watch ratio is drawn from a zero / swipe / engaged / replay mixture (heavy tail up to hundreds), whose
  moments have closed forms, so the truth is exact.

Everything is a pure function of (profile, seed): the same seed gives byte-identical files. The folder appears
atomically (built beside ``out_dir`` and renamed into place), so an interrupted run never leaves half a twin.
Credit: KuaiRec, Gao et al., CIKM 2022 (CC BY-SA 4.0); only the schema and summary statistics are borrowed.

Modules: ``config`` (profiles and behaviour parameters), ``entities`` (users, videos, random streams),
``interactions`` (big_matrix and small_matrix rows, the planted truth), ``noise`` (the watch-ratio mixture and
its closed-form moments), ``side_files`` (the small official files), ``reference`` (docs/KUAIREC.md's published
statistics), ``generator`` (``generate_twin`` and the folder layout), ``statistics`` (the twin measured against
the reference, and its difficulty).
"""

from kuairec_pipeline.dataset.synthetic.config import GENERATOR_VERSION, PROFILES, TwinBehaviour, TwinProfile
from kuairec_pipeline.dataset.synthetic.generator import (
    DATA_SUBDIR,
    PARAMS_FILE,
    TRUTH_DIR,
    TRUTH_FILE,
    data_dir,
    generate_twin,
    read_params,
    truth_dir,
    twin_is_complete,
)
from kuairec_pipeline.dataset.synthetic.statistics import (
    MAX_WATCH_RATIO,
    oracle_difficulty,
    reference_statistics,
    small_test_pairs,
    twin_statistics,
)

__all__ = [
    "DATA_SUBDIR",
    "GENERATOR_VERSION",
    "MAX_WATCH_RATIO",
    "PARAMS_FILE",
    "PROFILES",
    "TRUTH_DIR",
    "TRUTH_FILE",
    "TwinBehaviour",
    "TwinProfile",
    "data_dir",
    "generate_twin",
    "oracle_difficulty",
    "read_params",
    "reference_statistics",
    "small_test_pairs",
    "truth_dir",
    "twin_is_complete",
    "twin_statistics",
]
