"""The DMA golden model (pure Python): descriptors are checked when built, and the model moves exactly the
bytes the walks name, compared with a plain element-by-element reference."""

import re

import numpy as np
import pytest

from trntile.golden.dma import Descriptor, DmaError, DmaModel, Endpoint, Space


def model(**kw):
    dma = DmaModel(dram_bytes=kw.get("dram_bytes", 1 << 16), partitions=kw.get("partitions", 8),
                   sbuf_bytes=kw.get("sbuf_bytes", 1024))
    rng = np.random.default_rng(kw.get("seed", 0))
    dma.dram[:] = rng.integers(0, 256, dma.dram.size)
    dma.sbuf[:] = rng.integers(0, 256, dma.sbuf.shape)
    return dma


def reference(dma: DmaModel, d: Descriptor) -> tuple[np.ndarray, np.ndarray]:
    """DRAM and SBUF after ``d``, one element at a time, from the walk's definition."""
    dram, sbuf = dma.dram.copy(), dma.sbuf.copy()

    def places(e: Endpoint):
        out = []
        in_sbuf = e.space == Space.SBUF
        for p in range(e.partitions if in_sbuf else 1):
            for offset in _walk(e.dims):
                out.append((e.partition + p if in_sbuf else None, e.address + d.element_bytes * offset))
        return out

    values = [dram[a:a + d.element_bytes].copy() if p is None else sbuf[p, a:a + d.element_bytes].copy()
              for p, a in places(d.source)]
    for (p, a), value in zip(places(d.destination), values):
        if p is None:
            dram[a:a + d.element_bytes] = value
        else:
            sbuf[p, a:a + d.element_bytes] = value
    return dram, sbuf


def _walk(dims):
    if not dims:
        yield 0
        return
    (stride, count), rest = dims[0], dims[1:]
    for i in range(count):
        for inner in _walk(rest):
            yield stride * i + inner


def test_dram_to_sbuf_fills_partitions_in_turn():
    dma = model()
    d = Descriptor(Endpoint.dram(100, [(1, 64)]), Endpoint.sbuf(2, 4, 8, [(1, 16)]), element_bytes=1)
    dma.run(d)
    for p in range(4):
        assert np.array_equal(dma.sbuf[2 + p, 8:24], dma.dram[100 + 16 * p:116 + 16 * p])


def test_negative_stride_with_4_byte_elements():
    dma = model()
    d = Descriptor(Endpoint.dram(4000, [(-1, 10)]), Endpoint.dram(8000, [(1, 10)]), element_bytes=4)
    dma.run(d)
    words = dma.dram.view(np.uint32)
    assert np.array_equal(words[2000:2010], words[1000:990:-1])


@pytest.mark.parametrize("seed", range(40))
def test_random_descriptors_match_the_element_by_element_reference(seed):
    rng = np.random.default_rng(seed)
    dma = model(seed=seed)
    size = int(rng.choice([1, 2, 4]))

    def dims(n_dims, inner_total):
        counts = [int(c) for c in rng.integers(1, 5, n_dims)]
        counts[-1] = inner_total // int(np.prod(counts[:-1])) or 1
        return [(int(rng.integers(-3, 4)) * (1 if i == n_dims - 1 else 8), c) for i, c in enumerate(counts)]

    src_dims = dims(int(rng.integers(1, 4)), 24)
    n = int(np.prod([c for _, c in src_dims]))
    src = Endpoint.dram(20000 + int(rng.integers(0, 64)), src_dims)
    dst = Endpoint.sbuf(int(rng.integers(0, 4)), 1, 256 + size * int(rng.integers(0, 32)), [(1, n)]) \
        if rng.random() < 0.5 else Endpoint.dram(40000, [(2, n)])
    d = Descriptor(src, dst, element_bytes=size)
    want = reference(dma, d)
    dma.run(d)
    assert np.array_equal(dma.dram, want[0]) and np.array_equal(dma.sbuf, want[1])


def test_a_byte_written_twice_keeps_the_later_element():
    dma = model()
    d = Descriptor(Endpoint.dram(0, [(1, 4)]), Endpoint.dram(500, [(0, 4)]), element_bytes=2)
    dma.run(d)
    assert np.array_equal(dma.dram[500:502], dma.dram[6:8])


@pytest.mark.parametrize("build,message", [
    (lambda: Descriptor(Endpoint.dram(0, [(1, 4)]), Endpoint.dram(64, [(1, 4)]), element_bytes=3),
     r"element_bytes must be one of 1, 2, 4, not 3"),
    (lambda: Endpoint.dram(0, [(1, 0)]), r"dram dims\[0\] count must be an integer in 1\.\.65535, not 0"),
    (lambda: Endpoint.dram(0, [(1 << 23, 2)]), r"dram dims\[0\] stride must be an integer in -8388608\.\.8388607"),
    (lambda: Endpoint.dram(0, [(1, 1 << 16)]), r"count must be an integer in 1\.\.65535, not 65536"),
    (lambda: Endpoint.dram(1 << 32, [(1, 1)]), r"dram address must be an integer in 0\.\.4294967295"),
    (lambda: Endpoint.sbuf(0, 1, 0, [(1, 1)] * 4), r"sbuf dims must have 1\.\.3 dimensions, not 4"),
    (lambda: Endpoint.sbuf(0, 0, 0, [(1, 1)]), r"sbuf partitions must be an integer in 1\.\.65535, not 0"),
    (lambda: Descriptor(Endpoint.dram(0, [(1, 4)]), Endpoint.dram(64, [(1, 5)]), element_bytes=1),
     r"source walks 4 elements but destination 5"),
    (lambda: Descriptor(Endpoint.dram(0, [(1, 4)]), Endpoint.dram(64, [(1, 4)]), element_bytes=1, semaphore=256),
     r"semaphore must be an integer in 0\.\.255, not 256"),
])
def test_bad_descriptors_are_refused_when_built(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("descriptor,code,message", [
    (Descriptor(Endpoint.dram(0, [(1, 12)]), Endpoint.sbuf(6, 3, 0, [(1, 4)]), 1, semaphore=32, increment=1),
     DmaError.SEMAPHORE, r"semaphore must be in 0\.\.31 when increment is not 0, not 32"),
    (Descriptor(Endpoint.dram(0, [(1, 12)]), Endpoint.sbuf(6, 3, 0, [(1, 4)]), 1),
     DmaError.PARTITIONS, r"destination partitions 6\.\.8 are outside 0\.\.7"),
    (Descriptor(Endpoint.dram(65530, [(1, 8)]), Endpoint.sbuf(0, 1, 0, [(1, 8)]), 1),
     DmaError.SOURCE_BOUNDS, r"source reaches bytes 65530\.\.65537, outside DRAM's 0\.\.65535"),
    (Descriptor(Endpoint.dram(0, [(1, 8)]), Endpoint.sbuf(0, 1, 4, [(-1, 8)]), 1),
     DmaError.DESTINATION_BOUNDS, r"destination reaches bytes -3\.\.4, outside the SBUF partition's"),
    (Descriptor(Endpoint.dram(0, [(1, 2)]), Endpoint.sbuf(0, 1, 1020, [(1, 2)]), 4),
     DmaError.DESTINATION_BOUNDS, r"destination reaches bytes 1020\.\.1027"),
])
def test_descriptors_leaving_their_memory_are_refused_and_change_nothing(descriptor, code, message):
    dma = model()
    before = dma.dram.copy(), dma.sbuf.copy()
    found = dma.problem(descriptor)
    assert found is not None and found[0] == code and re.search(message, found[1]), found
    with pytest.raises(ValueError, match=message):
        dma.run(descriptor)
    assert np.array_equal(dma.dram, before[0]) and np.array_equal(dma.sbuf, before[1])


def test_completion_adds_to_the_semaphore_and_wraps():
    dma = model()
    dma.semaphores[5] = 0xFFFF_FFFE
    d = Descriptor(Endpoint.dram(0, [(1, 4)]), Endpoint.dram(64, [(1, 4)]), 1, semaphore=5, increment=3)
    dma.run(d)
    assert dma.semaphores[5] == 1
    with pytest.raises(ValueError, match=r"semaphore must be in 0\.\.31 when increment is not 0, not 40"):
        dma.run(Descriptor(Endpoint.dram(0, [(1, 4)]), Endpoint.dram(64, [(1, 4)]), 1, semaphore=40, increment=1))


def test_overlapping_source_and_destination_are_refused():
    dma = model()
    with pytest.raises(ValueError, match="overlap"):
        dma.run(Descriptor(Endpoint.dram(0, [(1, 8)]), Endpoint.dram(4, [(1, 8)]), 1))


@pytest.mark.parametrize("seed", range(20))
def test_descriptor_bytes_round_trip(seed):
    from trntile.hdl.dma_descriptor import DESCRIPTOR_BYTES, decode, encode

    rng = np.random.default_rng(seed)
    dims = [(int(rng.integers(-(1 << 23), 1 << 23)), int(rng.integers(1, 5))) for _ in range(int(rng.integers(1, 4)))]
    n = int(np.prod([c for _, c in dims]))
    d = Descriptor(Endpoint.dram(int(rng.integers(0, 1 << 32)), dims),
                   Endpoint.sbuf(int(rng.integers(0, 256)), n, int(rng.integers(0, 1 << 20)), [(1, 1)]),
                   element_bytes=int(rng.choice([1, 2, 4])), semaphore=int(rng.integers(0, 256)),
                   increment=int(rng.integers(0, 256)))
    raw = encode(d)
    assert len(raw) == DESCRIPTOR_BYTES
    back = decode(raw)
    assert back.source.byte_indices(4, 1024).tolist() == d.source.byte_indices(4, 1024).tolist()
    assert back.destination.byte_indices(4, 1024).tolist() == d.destination.byte_indices(4, 1024).tolist()
    assert (back.element_bytes, back.semaphore, back.increment) == (d.element_bytes, d.semaphore, d.increment)


@pytest.mark.parametrize("patch,code,message", [
    (lambda f: f.update(element_size=3), DmaError.ELEMENT_SIZE, r"element_size must be 0\.\.2"),
    (lambda f: f["destination"].update(space=2), DmaError.SPACE,
     r"destination space must be 0 \(DRAM\) or 1 \(SBUF\), not 2"),
    (lambda f: f["destination"]["dims"][3].update(count=0), DmaError.COUNT,
     r"destination dims\[3\] count must be in 1\.\.65535, not 0"),
    (lambda f: f["destination"]["dims"][0].update(stride=2), DmaError.PARTITION_STRIDE,
     r"destination dims\[0\] walks partitions: its stride must be 1, not 2"),
    (lambda f: f["source"]["dims"][3].update(count=3), DmaError.MISMATCH, r"source walks 6 elements but destination 4"),
    # earlier checks win: a bad element size and a bad count together report the element size
    (lambda f: (f.update(element_size=3), f["source"]["dims"][1].update(count=0)), DmaError.ELEMENT_SIZE,
     r"element_size"),
])
def test_decoding_bad_bits_names_the_field(patch, code, message):
    from trntile.hdl.dma_descriptor import descriptor_layout, decode, fields, format_problem

    f = fields(Descriptor(Endpoint.dram(0, [(1, 2), (1, 2)]), Endpoint.sbuf(0, 2, 0, [(1, 2)]), 1))
    patch(f)
    raw = descriptor_layout.const(f).as_value().value
    assert format_problem(raw)[0] == code
    with pytest.raises(ValueError, match=message):
        decode(raw)


@pytest.mark.parametrize("given,message", [
    ({"partitions": 3}, r"partitions must be a power of two in 4\.\.128, not 3"),
    ({"sbuf_bytes": 512}, r"sbuf_bytes must be a power of two in 1024\.\.262144, not 512"),
    ({"dram_bytes": 0}, r"dram_bytes must be an integer in 1\.\.4294967296, not 0"),
])
def test_model_parameters_are_checked(given, message):
    with pytest.raises(ValueError, match=message):
        DmaModel(**{"dram_bytes": 4096, "partitions": 4, "sbuf_bytes": 1024, **given})
