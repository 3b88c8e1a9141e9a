import os

# Tests run on the CPU with deterministic XLA; set before JAX is imported anywhere.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite is bound by XLA compiles, and many test files (and the CLIs they start in
# subprocesses) compile the same codec functions at the same shapes. JAX's persistent cache lets
# the xdist workers share them; its key covers the JAX/XLA versions, flags and the computation,
# so a stale entry is never used. Executables are deterministic, so a cached one computes what a
# fresh compile would (test_decode_in_fresh_process_same_output still compiles from scratch).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import gc  # noqa: E402

import pytest  # noqa: E402

# XLA:CPU maps each compiled executable's code into several memory regions of its own. The
# whole suite's executables together pass Linux's default vm.max_map_count (65530), and LLVM
# then segfaults while compiling the next one (seen in the codec tests once the intra quadtree
# added its compile variants). Between test modules, drop the compiled executables when the
# process holds many mappings; later modules recompile what they need.
_MAX_MAPS = 45000


def _map_count() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux: no such limit to guard against
        return 0


@pytest.fixture(autouse=True, scope="module")
def _bounded_executable_maps():
    yield
    if _map_count() > _MAX_MAPS:
        import jax

        jax.clear_caches()
        gc.collect()


# The test files that run the whole encoder compile the same codec stages (`level_candidates`,
# `intra_cus`, `motion_pyramid`: about 100 s at each picture size and tool set). Split over two
# xdist workers by file, both workers compiled them at the same time, and the suite took as long
# on two cores as in one process. Under `--dist loadfile` (`make test`) these files form one unit
# of work, so one worker compiles each stage once and reuses it in memory, while every other
# file is a unit of its own and fills the other worker. (A scheduler rather than xdist_group
# marks: xdist 3.8 tags a group into `item._nodeid`, which pytest 9.2 no longer reads.)
_ENCODER_FILES = frozenset({
    "test_bitstream", "test_cli", "test_codec_roundtrip", "test_cross_device", "test_intra_partition",
    "test_nnint_threads", "test_nnlf", "test_partition", "test_train_nnlf",
})


# optionalhook: `pytest -p no:xdist` (one process) does not know this hook and must not fail on it.
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class _EncoderFilesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "encoder" if os.path.basename(path).removesuffix(".py") in _ENCODER_FILES else path

    return _EncoderFilesTogether(config, log)
