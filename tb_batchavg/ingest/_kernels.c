/* The reader's loops over records, in C: TFRecord framing, data CRCs, matching records against a
 * template, gathering their fields, and telling the records that hold no scalar (`unused`).
 * records.py's numpy kernels are the reference (and the fallback where this module is not built),
 * and the tests compare the two; without this module every record `unused` rules out is parsed
 * by protobuf instead (the same values).
 *
 * Kept in C because a record's length decides where the next one starts, so framing records of
 * varying lengths is a loop per record, and a CRC is a loop per byte: numpy needs clever
 * detours for both (periodic jumps, linear CRC tables), which took 40% of the CPU of loading a
 * 1M-step file (bench.writers); here they take a few percent. No well-kept library checks the
 * CRCs of many records in one call (google-crc32c and crc32c take one buffer a call, 0.1 us of
 * Python each). numpy matches a template by gathering each record's bytes into rows of 64-bit
 * words and comparing them in a pass per word, and gathers fields at unaligned offsets through
 * byte-strided views: with those loops here too, a 1M-step load takes 0.55-0.7x the CPU. Images
 * and histograms are told from their wire format here, where protobuf parsed each in a Python
 * loop (about 3.5 us a record): files mostly of them load in 0.45-0.55x the time.
 *
 * A record is: uint64 length | uint32 masked crc32c(length bytes) | data | uint32 masked
 * crc32c(data), little-endian; masked(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8.
 * The GIL is released while the loops run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_SSE42_PATH 1
#endif
#if defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#endif

static uint32_t table[8][256]; /* slicing-by-8 tables of the reflected polynomial 0x82F63B78 */

static void make_tables(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    for (int i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
}

static uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static uint32_t load32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static uint32_t crc_portable(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
#if defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
    for (; n >= 8; p += 8, n -= 8) c = __crc32cd(c, load64(p));
    for (; n; n--) c = __crc32cb(c, *p++);
#else
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w = load64(p) ^ c;
        c = table[7][w & 0xFF] ^ table[6][(w >> 8) & 0xFF] ^ table[5][(w >> 16) & 0xFF] ^
            table[4][(w >> 24) & 0xFF] ^ table[3][(w >> 32) & 0xFF] ^ table[2][(w >> 40) & 0xFF] ^
            table[1][(w >> 48) & 0xFF] ^ table[0][w >> 56];
    }
    for (; n; n--) c = table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
#endif
    return c ^ 0xFFFFFFFFu;
}

#ifdef HAVE_SSE42_PATH
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(const uint8_t *p, size_t n) {
    uint64_t c = 0xFFFFFFFFu;
    for (; n >= 8; p += 8, n -= 8) c = _mm_crc32_u64(c, load64(p));
    uint32_t c32 = (uint32_t)c;
    for (; n; n--) c32 = _mm_crc32_u8(c32, *p++);
    return c32 ^ 0xFFFFFFFFu;
}
#endif

static uint32_t (*crc32c)(const uint8_t *, size_t) = crc_portable;

static uint32_t masked(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xA282EAD8u; }

/* Whether `view` is a C-contiguous buffer of 8-byte items with room for n of them (else a ValueError). */
static int int64_buffer(Py_buffer *view, Py_ssize_t n, const char *name) {
    if (view->itemsize != 8 || view->len < n * 8 || !PyBuffer_IsContiguous(view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s must be a contiguous int64 buffer of at least %zd items", name, n);
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(frame_doc,
             "frame(data, heads, lengths, pos) -> (count, end, corrupt_at)\n\n"
             "Walks the records of `data` from byte `pos` (a record's first byte), checking each\n"
             "header's length CRC, until `heads` and `lengths` (int64 buffers of equal size) are\n"
             "full; writes the `count` records' header offsets and data lengths there. `end` is\n"
             "the end of the last complete record (where to go on while count fills the buffers;\n"
             "else a partial record, its header or body not all in `data`, starts there);\n"
             "`corrupt_at` is the offset of a header whose length CRC fails (the walk stops there),\n"
             "or -1.");

static PyObject *frame(PyObject *self, PyObject *args) {
    Py_buffer data, heads, lengths;
    Py_ssize_t pos;
    if (!PyArg_ParseTuple(args, "y*w*w*n", &data, &heads, &lengths, &pos)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t size = data.len, capacity = heads.len / 8, count = 0, corrupt = -1;
    if (pos < 0 || pos > size)
        PyErr_SetString(PyExc_ValueError, "pos must lie in data");
    else if (capacity < 1)
        PyErr_SetString(PyExc_ValueError, "heads must hold at least one item");
    else if (int64_buffer(&heads, capacity, "heads") && int64_buffer(&lengths, capacity, "lengths")) {
        const uint8_t *p = data.buf;
        int64_t *head_out = heads.buf, *length_out = lengths.buf;
        Py_BEGIN_ALLOW_THREADS
        while (count < capacity && size - pos >= 12) {
            uint64_t length = load64(p + pos);
            if (masked(crc32c(p + pos, 8)) != load32(p + pos + 8)) {
                corrupt = pos;
                break;
            }
            if (size - pos < 16 || length > (uint64_t)(size - pos - 16)) break; /* partial */
            head_out[count] = pos;
            length_out[count] = (int64_t)length;
            count++;
            pos += 16 + (Py_ssize_t)length;
        }
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("nnn", count, pos, corrupt);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&heads);
    PyBuffer_Release(&lengths);
    return result;
}

PyDoc_STRVAR(check_doc,
             "check(data, starts, lengths, out)\n\n"
             "out[i] = whether the data CRC of record i (its data at starts[i], lengths[i] bytes,\n"
             "its masked CRC just after) holds. starts and lengths are int64; out is uint8 (or bool).");

typedef uint8_t (*RecordTest)(const uint8_t *data, size_t start, size_t length);

/* out[i] = test(record i) for the records at starts[i], lengths[i] (int64 buffers), each followed
 * by `after` more bytes in data; out is a writable buffer of bytes. */
static PyObject *each_record(PyObject *args, RecordTest test, Py_ssize_t after) {
    Py_buffer data, starts, lengths, out;
    if (!PyArg_ParseTuple(args, "y*y*y*w*", &data, &starts, &lengths, &out)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = out.len;
    if (out.itemsize != 1 || !PyBuffer_IsContiguous(&out, 'C'))
        PyErr_SetString(PyExc_ValueError, "out must be a contiguous buffer of bytes");
    else if (int64_buffer(&starts, n, "starts") && int64_buffer(&lengths, n, "lengths")) {
        const uint8_t *p = data.buf;
        const int64_t *start = starts.buf, *length = lengths.buf;
        uint8_t *flag = out.buf;
        int outside = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            if (start[i] < 0 || length[i] < 0 || start[i] > data.len || length[i] > data.len - start[i] - after) {
                outside = 1;
                break;
            }
            flag[i] = test(p, (size_t)start[i], (size_t)length[i]);
        }
        Py_END_ALLOW_THREADS
        if (outside)
            PyErr_SetString(PyExc_ValueError, "a record lies outside data");
        else
            result = (Py_INCREF(Py_None), Py_None);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&lengths);
    PyBuffer_Release(&out);
    return result;
}

static uint8_t crc_holds(const uint8_t *p, size_t start, size_t length) {
    return masked(crc32c(p + start, length)) == load32(p + start + length);
}

static PyObject *check(PyObject *self, PyObject *args) { return each_record(args, crc_holds, 4); }

PyDoc_STRVAR(match_doc,
             "match(data, starts, template, mask, state)\n\n"
             "For each record of len(template) bytes at starts[i] (int64; its masked data CRC just\n"
             "after), state[i] (uint8) = 0 if its bytes differ from the template's on the bits of\n"
             "`mask` (bytes of len(template)), else 1 if its data CRC holds, 2 if it fails.");

static PyObject *match(PyObject *self, PyObject *args) {
    Py_buffer data, starts, template, mask, state;
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*", &data, &starts, &template, &mask, &state)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = state.len, length = template.len;
    if (state.itemsize != 1 || !PyBuffer_IsContiguous(&state, 'C'))
        PyErr_SetString(PyExc_ValueError, "state must be a contiguous buffer of bytes");
    else if (mask.len != length)
        PyErr_SetString(PyExc_ValueError, "mask must be as long as template");
    else if (int64_buffer(&starts, n, "starts")) {
        const uint8_t *p = data.buf, *t = template.buf, *m = mask.buf;
        const int64_t *start = starts.buf;
        uint8_t *out = state.buf;
        int outside = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            if (start[i] < 0 || start[i] > data.len - length - 4) {
                outside = 1;
                break;
            }
            const uint8_t *r = p + start[i];
            uint64_t differ = 0;
            Py_ssize_t j = 0;
            for (; j + 8 <= length; j += 8) differ |= (load64(r + j) ^ load64(t + j)) & load64(m + j);
            for (; j < length; j++) differ |= (uint64_t)((r[j] ^ t[j]) & m[j]);
            out[i] = differ ? 0 : crc_holds(p, (size_t)start[i], (size_t)length) ? 1 : 2;
        }
        Py_END_ALLOW_THREADS
        if (outside)
            PyErr_SetString(PyExc_ValueError, "a record lies outside data");
        else
            result = (Py_INCREF(Py_None), Py_None);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&template);
    PyBuffer_Release(&mask);
    PyBuffer_Release(&state);
    return result;
}

/* The offsets must be an int64 buffer whose every item lies in [0, size - width]. */
static int offsets_inside(Py_buffer *offsets, Py_ssize_t n, Py_ssize_t size, Py_ssize_t width) {
    if (!int64_buffer(offsets, n, "offsets")) return 0;
    const int64_t *at = offsets->buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (at[i] < 0 || at[i] > size - width) {
            PyErr_SetString(PyExc_ValueError, "an offset lies outside data");
            return 0;
        }
    return 1;
}

PyDoc_STRVAR(floats_doc,
             "floats(data, offsets, size, out)\n\n"
             "out[i] (float64) = the little-endian float32 (size 4) or float64 (size 8) at byte\n"
             "offsets[i] (int64) of data.");

static PyObject *floats(PyObject *self, PyObject *args) {
    Py_buffer data, offsets, out;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "y*y*nw*", &data, &offsets, &size, &out)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = out.len / 8;
    if (size != 4 && size != 8)
        PyErr_SetString(PyExc_ValueError, "size must be 4 or 8");
    else if (int64_buffer(&out, n, "out") && offsets_inside(&offsets, n, data.len, size)) {
        const uint8_t *p = data.buf;
        const int64_t *at = offsets.buf;
        double *value = out.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            if (size == 8) {
                uint64_t bits = load64(p + at[i]);
                memcpy(&value[i], &bits, 8);
            } else {
                uint32_t bits = load32(p + at[i]);
                float f;
                memcpy(&f, &bits, 4);
                value[i] = f;
            }
        }
        Py_END_ALLOW_THREADS
        result = (Py_INCREF(Py_None), Py_None);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&out);
    return result;
}

PyDoc_STRVAR(varints_doc,
             "varints(data, offsets, length, out)\n\n"
             "out[i] (int64) = the varint of `length` bytes (1 to 10) at byte offsets[i] (int64)\n"
             "of data, read as 7 bits a byte, least significant first (continuation bits ignored).");

static PyObject *varints(PyObject *self, PyObject *args) {
    Py_buffer data, offsets, out;
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "y*y*nw*", &data, &offsets, &length, &out)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = out.len / 8;
    if (length < 1 || length > 10)
        PyErr_SetString(PyExc_ValueError, "length must lie in 1..10");
    else if (int64_buffer(&out, n, "out") && offsets_inside(&offsets, n, data.len, length)) {
        const uint8_t *p = data.buf;
        const int64_t *at = offsets.buf;
        uint64_t *value = out.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t v = 0;
            for (Py_ssize_t k = 0; k < length; k++) v |= (uint64_t)(p[at[i] + k] & 0x7F) << (7 * k);
            value[i] = v;
        }
        Py_END_ALLOW_THREADS
        result = (Py_INCREF(Py_None), Py_None);
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&out);
    return result;
}

/* Protobuf wire format, as far as `unused` walks it: a field's key, then its payload's bounds. */
typedef struct {
    const uint8_t *p;
    size_t pos, end;
} Cursor;

static int varint(Cursor *c, uint64_t *value) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && c->pos < c->end; shift += 7) {
        uint8_t byte = c->p[c->pos++];
        v |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *value = v;
            return 1;
        }
    }
    return 0;
}

/* The next field of the message in [pos, end): its number, wire type and payload [*start, *stop)
 * (a varint's bytes for wire type 0). 0 at the message's end, -1 where the bytes are not a
 * message (groups included: no Event field uses them). */
static int next_field(Cursor *c, uint64_t *field, int *wire, size_t *start, size_t *stop) {
    uint64_t key, size;
    if (c->pos == c->end) return 0;
    if (!varint(c, &key)) return -1;
    *field = key >> 3;
    *wire = (int)(key & 7);
    *start = c->pos;
    switch (*wire) {
    case 0:
        if (!varint(c, &size)) return -1;
        break;
    case 1:
        if (c->end - c->pos < 8) return -1;
        c->pos += 8;
        break;
    case 2:
        if (!varint(c, &size) || size > c->end - c->pos) return -1;
        *start = c->pos;
        c->pos += (size_t)size;
        break;
    case 5:
        if (c->end - c->pos < 4) return -1;
        c->pos += 4;
        break;
    default:
        return -1;
    }
    *stop = c->pos;
    return 1;
}

/* The plugin name of a SummaryMetadata in [start, stop): 1 if it names a plugin other than
 * "scalars", 0 if "scalars" or none, -1 where the bytes are not a message. */
static int names_another_plugin(const uint8_t *p, size_t start, size_t stop) {
    Cursor meta = {p, start, stop};
    uint64_t field;
    int wire, found, other = 0;
    size_t a, b;
    while ((found = next_field(&meta, &field, &wire, &a, &b)) > 0) {
        if (field != 1 || wire != 2) continue; /* plugin_data */
        Cursor data = {p, a, b};
        size_t x, y;
        int f;
        while ((f = next_field(&data, &field, &wire, &x, &y)) > 0)
            if (field == 1 && wire == 2) other = !(y - x == 7 && memcmp(p + x, "scalars", 7) == 0) && y > x;
        if (f < 0) return -1;
    }
    return found < 0 ? -1 : other;
}

/* Whether a Summary.Value in [start, stop) can hold a scalar (1), cannot (0), or is not a message
 * (-1): the last of its `value` oneof fields decides, as in protobuf (a field of the wrong wire
 * type is an unknown field there); a tensor can, unless its metadata names another plugin. */
static int value_may_hold_a_scalar(const uint8_t *p, size_t start, size_t stop) {
    Cursor value = {p, start, stop};
    uint64_t field, kind = 0;
    int wire, found, other = 0;
    size_t a, b;
    while ((found = next_field(&value, &field, &wire, &a, &b)) > 0) {
        if (field == 2 ? wire == 5 : (field >= 3 && field <= 8 && field != 7 && wire == 2))
            kind = field; /* the oneof: 2 simple_value, 3-6 old histogram, image, histo, audio, 8 tensor */
        if (field == 9 && wire == 2 && (other = names_another_plugin(p, a, b)) < 0) return -1;
    }
    if (found < 0) return -1;
    return kind == 2 || (kind == 8 && !other);
}

/* Whether an Event in [start, stop) holds no value a scalar can come from (1), some (0), or is
 * not a message (-1). */
static int holds_no_scalar(const uint8_t *p, size_t start, size_t stop) {
    Cursor event = {p, start, stop};
    uint64_t field;
    int wire, found, none = 1;
    size_t a, b;
    while ((found = next_field(&event, &field, &wire, &a, &b)) > 0) {
        if (field != 5 || wire != 2) continue; /* summary */
        Cursor summary = {p, a, b};
        size_t x, y;
        int f;
        while ((f = next_field(&summary, &field, &wire, &x, &y)) > 0) {
            if (field != 1 || wire != 2) continue; /* value */
            int may = value_may_hold_a_scalar(p, x, y);
            if (may < 0) return -1;
            none = none && !may;
        }
        if (f < 0) return -1;
    }
    return found < 0 ? -1 : none;
}

PyDoc_STRVAR(unused_doc,
             "unused(data, starts, lengths, out)\n\n"
             "out[i] (uint8) = 1 if the Event record i (at starts[i], lengths[i] bytes; int64) is a\n"
             "well-formed message at the levels walked (Event, Summary, Value, SummaryMetadata,\n"
             "PluginData) none of whose summary values can hold a scalar: no summary, or values\n"
             "that are images, histograms, audio, or tensors whose metadata names another plugin\n"
             "than \"scalars\"; else 0.");

static uint8_t no_scalar(const uint8_t *p, size_t start, size_t length) {
    return holds_no_scalar(p, start, start + length) == 1;
}

static PyObject *unused(PyObject *self, PyObject *args) { return each_record(args, no_scalar, 0); }

static PyMethodDef methods[] = {
    {"frame", frame, METH_VARARGS, frame_doc},
    {"check", check, METH_VARARGS, check_doc},
    {"match", match, METH_VARARGS, match_doc},
    {"floats", floats, METH_VARARGS, floats_doc},
    {"varints", varints, METH_VARARGS, varints_doc},
    {"unused", unused, METH_VARARGS, unused_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "The reader's loops over event-file records, in C.", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    make_tables();
#ifdef HAVE_SSE42_PATH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) crc32c = crc_sse42;
#endif
    return PyModule_Create(&module);
}
