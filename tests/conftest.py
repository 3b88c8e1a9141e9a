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
