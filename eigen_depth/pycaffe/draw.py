"""pycaffe's `caffe.draw`: a NetParameter as a graph of layers and blobs (pydot and graphviz, optional
packages: `pip install pydot` and the graphviz programs)."""
from .proto import caffe_pb2

LAYER_STYLE = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}


def _pydot():
    try:
        import pydot
    except ImportError:
        raise ImportError("caffe.draw needs pydot: pip install pydot (and the graphviz programs to render)") from None
    return pydot


def get_layer_label(layer, rankdir):
    separator = " " if rankdir in ("TB", "BT") else "\\n"
    return f'"{layer.name}{separator}({layer.type})"'


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None):
    """The pydot graph of a NetParameter: a box per layer, an octagon per blob (in-place tops drawn as one
    node with the layer), edges bottom -> layer -> top; only the layers of `phase` when given."""
    pydot = _pydot()
    graph = pydot.Dot(caffe_net.name if caffe_net.name else "Net", graph_type="digraph", rankdir=rankdir)
    nodes, edges = {}, []
    for layer in caffe_net.layer:
        if phase is not None and layer.include:
            if not any(rule.phase == phase for rule in layer.include if rule.HasField("phase")):
                continue
        node_name = f"{layer.name}_{layer.type}"
        in_place = len(layer.bottom) == 1 and len(layer.top) == 1 and layer.bottom[0] == layer.top[0]
        style = NEURON_LAYER_STYLE if in_place else LAYER_STYLE
        nodes[node_name] = pydot.Node(node_name, label=get_layer_label(layer, rankdir), **style)
        for bottom in layer.bottom:
            nodes.setdefault(f"{bottom}_blob", pydot.Node(f"{bottom}_blob", label=bottom, **BLOB_STYLE))
            edges.append((f"{bottom}_blob", node_name))
        for top in layer.top:
            nodes.setdefault(f"{top}_blob", pydot.Node(f"{top}_blob", label=top, **BLOB_STYLE))
            edges.append((node_name, f"{top}_blob"))
    for node in nodes.values():
        graph.add_node(node)
    for source, target in edges:
        graph.add_edge(pydot.Edge(nodes[source], nodes[target]))
    return graph


def draw_net(caffe_net, rankdir, ext="png", phase=None):
    """The rendered graph as bytes in format `ext` (graphviz's `dot` must be installed)."""
    return get_pydot_graph(caffe_net, rankdir, phase=phase).create(format=ext)


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None):
    """Renders first, then writes atomically: a failed drawing (no `dot`, an unknown format) leaves the file."""
    from ..atomic import atomic_write
    ext = filename[filename.rfind(".") + 1:]
    data = draw_net(caffe_net, rankdir, ext, phase)
    with atomic_write(filename) as handle:
        handle.write(data)


__all__ = ["caffe_pb2", "get_pydot_graph", "draw_net", "draw_net_to_file"]
