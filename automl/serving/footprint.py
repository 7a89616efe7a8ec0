"""How much memory a loaded model holds, estimated once when the server loads it.

``footprint(obj)`` walks the objects reachable from ``obj`` (``gc.get_referents``) and adds
up ``sys.getsizeof`` of each one once (for a numpy array that includes the buffer it owns).
What that walk cannot see is counted explicitly:

- a numpy array's base (the owner of a view's buffer) and the items of an object array,
  which arrays do not report as referents;
- a function's closure and defaults (not its module's globals nor its code, which every
  model shares); classes and modules are never entered, for the same reason;
- native objects: a Python object holding a ctypes handle (LightGBM's and XGBoost's
  boosters) or a C extension object with memory of its own (scikit-learn's trees), when
  its type defines how it pickles, counts as the size of its pickled state: the model it
  rebuilds its native memory from.

Why this is sound: the figure is per model and deterministic. The process RSS is neither:
requests in other threads move it during a load, and a load that reuses memory an evicted
model freed does not grow it at all, so a cache that evicts would count such models as
free. ``tracemalloc`` sees no native allocations and cannot tell one thread's from
another's. The estimate stays within a factor of two of the RSS a model adds
(tests/test_serve.py checks LightGBM and linear models); LightGBM's C++ trees, which take
up to about twice their text form when there are many tiny ones, are the low end.
"""

from __future__ import annotations

import ctypes
import gc
import pickle
import sys
import types
from typing import Any

import numpy as np

HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python, not in C
SHARED = (type, types.ModuleType, types.CodeType)  # every model shares these: never entered
NUMPY = (np.ndarray, np.generic, np.dtype)  # C types whose size getsizeof already tells


def native(obj: Any) -> bool:
    """Whether ``obj`` holds memory the walk cannot see and says how it pickles."""
    kind = type(obj)
    if "__getstate__" not in vars(kind) and "__reduce__" not in vars(kind):
        return False
    if kind.__flags__ & HEAP_TYPE:
        state = getattr(obj, "__dict__", None)
        return isinstance(state, dict) and any(
            isinstance(value, ctypes._SimpleCData) for value in state.values()
        )
    if kind.__module__ == "builtins" or isinstance(obj, NUMPY):
        return False
    return not gc.get_referents(obj)


def footprint(root: Any) -> int:
    """Bytes held by ``root`` and everything it reaches, each object counted once."""
    seen: set[int] = set()
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, SHARED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj, 0)
        if isinstance(obj, types.FunctionType):
            stack.extend((obj.__closure__, obj.__defaults__, obj.__kwdefaults__, obj.__dict__))
        elif isinstance(obj, np.ndarray):
            stack.append(obj.base)
            if obj.dtype.hasobject:
                stack.extend(obj.flat)
        elif native(obj):
            try:
                total += len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
            except Exception:  # it does not pickle after all: walk it as any object
                stack.extend(gc.get_referents(obj))
        else:
            stack.extend(gc.get_referents(obj))
    return total
