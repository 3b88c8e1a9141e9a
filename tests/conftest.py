import os

# Tests run on the CPU with deterministic XLA; set before JAX is imported anywhere.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
