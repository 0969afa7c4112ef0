"""Spark's half of ``benchmarks/spark_als.py``: Java and pyspark, a ``local[N]`` session, Spark MLlib ALS, and a
sampler of resident memory over a process tree (the Python driver and its JVM child).

pyspark is a benchmark-only dependency (``pip install -e '.[bench]'``); Java comes from Debian's packages.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

import numpy as np

JAVA_PACKAGE = "default-jre-headless"  # Debian's Java runtime (OpenJDK 17 on bookworm; pyspark 4 needs >= 17)


def ensure_java(install: bool = True) -> str:
    """Path of ``java``; when missing and ``install``, install Debian's ``default-jre-headless`` with apt-get
    (needs root), printing what apt does.

    Returns
    -------
    str: the ``java`` executable.

    Raises
    ------
    RuntimeError
        If Java is missing and cannot (or may not) be installed.
    """
    java = shutil.which("java")
    if java:
        return java
    if not install:
        raise RuntimeError("java is not installed (apt-get install -y default-jre-headless)")
    print(f"java not found: installing {JAVA_PACKAGE} from Debian's packages")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", JAVA_PACKAGE]):
        print("  $", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    java = shutil.which("java")
    if not java:
        raise RuntimeError(f"{JAVA_PACKAGE} installed but no java on PATH")
    return java


def java_version(java: str) -> str:
    """First line of ``java -version`` (it prints to stderr)."""
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=True)
    return (result.stderr or result.stdout).splitlines()[0].strip()


def require_pyspark() -> str:
    """pyspark's version.

    Raises
    ------
    RuntimeError
        If pyspark is not installed, naming the extra that installs it.
    """
    try:
        import pyspark
    except ImportError as exc:
        raise RuntimeError("pyspark is not installed: pip install -e '.[bench]' (benchmark-only dependency)") from exc
    return pyspark.__version__


def start_session(threads: int, driver_memory: str, shuffle_partitions: int):
    """A ``local[threads]`` SparkSession with an explicit driver heap, no UI and no console progress bar.

    In local mode the executor lives inside the driver JVM, so ``spark.driver.memory`` is the whole heap.

    Parameters
    ----------
    threads : worker threads (``local[threads]``).
    driver_memory : JVM heap, e.g. ``"8g"``.
    shuffle_partitions : ``spark.sql.shuffle.partitions`` (Spark's default 200 is for clusters).

    Returns
    -------
    pyspark.sql.SparkSession.
    """
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(f"local[{threads}]")
        .appName("kuairec-spark-als")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def jvm_pid(session) -> int:
    """Process id of the session's JVM (the driver, which in local mode also runs the tasks)."""
    return int(session.sparkContext._jvm.java.lang.ProcessHandle.current().pid())


def spark_blas(session) -> str:
    """The BLAS implementation Spark's linear algebra uses (native through JNI, or the pure-Java fallback)."""
    jvm = session.sparkContext._jvm
    return str(jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getName())


@dataclass(frozen=True)
class SparkALSSettings:
    """Spark MLlib ALS settings of one run (``pyspark.ml.recommendation.ALS``)."""

    rank: int  # latent factors
    max_iter: int  # ALS sweeps
    reg_param: float  # regParam, scaled by Spark per row by its number of positives (ALS-WR)
    alpha: float  # confidence = 1 + alpha * |rating|
    seed: int  # factor initialization
    blocks: int  # numUserBlocks = numItemBlocks (Spark's default 10)


def fit_als(ratings, settings: SparkALSSettings):
    """Fit Spark MLlib's implicit-feedback ALS on a DataFrame of ``user``, ``item``, ``rating``.

    Spark's ``fit`` materializes both factor tables before it returns (final storage level MEMORY_AND_DISK), so
    timing this call times the whole factorization.

    Returns
    -------
    pyspark.ml.recommendation.ALSModel.
    """
    from pyspark.ml.recommendation import ALS

    als = ALS(
        rank=settings.rank,
        maxIter=settings.max_iter,
        regParam=settings.reg_param,
        alpha=settings.alpha,
        implicitPrefs=True,
        seed=settings.seed,
        numUserBlocks=settings.blocks,
        numItemBlocks=settings.blocks,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
    )
    return als.fit(ratings)


def factors_as_arrays(model, n_users: int, n_videos: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's user and item factors as float32 (n, rank) arrays indexed by id (zeros for an absent id)."""

    def dense(frame, n: int) -> np.ndarray:
        rows = frame.collect()
        out = np.zeros((n, model.rank), dtype=np.float32)
        ids = np.array([row["id"] for row in rows], dtype=np.int64)
        if ids.size:
            out[ids] = np.array([row["features"] for row in rows], dtype=np.float32)
        return out

    return dense(model.userFactors, n_users), dense(model.itemFactors, n_videos)


class TreeMemorySampler:
    """Peak resident memory of a process and all its descendants (summed), sampled on a background thread.

    ``ru_maxrss`` cannot see a JVM started by the measured process (it reports one process, not a sum), and a child's
    ``ru_maxrss`` starts at its parent's resident size at the fork (Linux keeps the high-water mark across exec), so
    every side is sampled with psutil instead; each sample sums the tree's RSS at that instant. A peak shorter than
    the interval can be missed. ``children=False`` samples the one process (a JVM left by an earlier Spark session
    in this process's tree would otherwise count).
    """

    def __init__(self, pid: int, interval_s: float = 0.02, children: bool = True) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self._children = children
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_bytes = 0
        self.peak_by_name: dict[str, int] = {}  # process name -> its own peak RSS

    def _sample(self) -> None:
        import psutil

        try:
            processes = [self._root, *(self._root.children(recursive=True) if self._children else [])]
        except psutil.NoSuchProcess:
            return
        total = 0
        for process in processes:
            try:
                rss = process.memory_info().rss
                name = process.name()
            except psutil.NoSuchProcess:  # ended between the listing and the read: it holds nothing now
                continue
            total += rss
            self.peak_by_name[name] = max(self.peak_by_name.get(name, 0), rss)
        self.peak_bytes = max(self.peak_bytes, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeMemorySampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def timed(function, *args, **kwargs):
    """(result, wall seconds) of one call."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started
