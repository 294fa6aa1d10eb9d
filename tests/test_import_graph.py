"""The package's imports form a DAG, and nothing in the library imports the command-line layer.

Every import counts, including those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'asl_jax'
# The command-line layer: thin modules on top; ``asl_jax.main`` is asl-train's older spelling.
CLI_PREFIXES = ('asl_jax.cli', 'asl_jax.main')


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def import_graph() -> dict[str, set[str]]:
  """module -> the asl_jax modules it imports (``from a import b``: module a.b if it is one)."""
  modules = {_module_name(p): p for p in PACKAGE.rglob('*.py')}
  graph: dict[str, set[str]] = {name: set() for name in modules}
  for name, path in modules.items():
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      targets = []
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        targets = [
          f'{node.module}.{a.name}' if f'{node.module}.{a.name}' in modules else node.module
          for a in node.names
        ]
      for target in targets:
        while target and target not in modules and '.' in target:
          target = target.rsplit('.', 1)[0]  # import a.b.c where a.b is the module.
        if target in modules and target != name and target.startswith('asl_jax'):
          graph[name].add(target)
  return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]

  def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        cycles.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return cycles


def _is_cli(module: str) -> bool:
  return any(module == p or module.startswith(p + '.') for p in CLI_PREFIXES)


def test_cycle_finder_finds_a_known_cycle():
  graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}, 'e': set()}
  assert find_cycles(graph) == [['a', 'b', 'c']]
  assert find_cycles({'a': {'b'}, 'b': set()}) == []


def test_the_package_imports_form_a_dag():
  graph = import_graph()
  assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # The walk sees the package.
  assert find_cycles(graph) == []


def test_no_library_module_imports_the_command_line_layer():
  graph = import_graph()
  offenders = sorted(
    f'{m} -> {t}' for m, targets in graph.items() if not _is_cli(m) for t in targets if _is_cli(t)
  )
  assert offenders == []


def test_every_command_is_a_module_with_run():
  graph = import_graph()
  commands = sorted(m for m in graph if m.startswith('asl_jax.cli.'))
  assert len(commands) >= 11
  for module in ('asl_jax.cli.common', 'asl_jax.cli.flags'):
    commands.remove(module)
  for module in commands:
    source = (PACKAGE.parent / (module.replace('.', '/') + '.py')).read_text()
    assert 'def run() -> None:' in source, module
