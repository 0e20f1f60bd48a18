/* The UDP audio packet path in C: the fast twin of pibuddy/xiaozhi/udp_packet.py.
 *
 * The same five functions with the same arguments, results, exceptions and messages; udp_codec.py picks
 * this module when it imports. AES-128-CTR goes through OpenSSL's EVP interface with one cipher context
 * per key, kept in a bounded dict (a miss costs a key schedule, a hit only resets the counter block).
 *
 * The GIL stays held: releasing it around the cipher calls measured 20-80 ns slower per packet
 * (bench/RESULTS.md), PiBuddy's packet path runs on one event-loop thread anyway, and holding it is what
 * makes sharing one cipher context per key safe.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdio.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#define HEADER_SIZE 16
#define KEY_SIZE 16
#define PACKET_TYPE_AUDIO 0x01
#define MAX_FRAME_SIZE 0xFFFF /* const.MAX_AUDIO_FRAME_SIZE: the u16 payload_len */
#define N_PACKET_FIELDS 6

static const char CTX_CAPSULE[] = "pibuddy.xiaozhi._udp_packet.cipher";

/* AudioPacket's fields in constructor order: exec_module checks the dataclass still has exactly these. */
static const char *const PACKET_FIELDS[N_PACKET_FIELDS] = {
    "ssrc", "timestamp", "sequence", "payload", "type", "flags",
};

/* Header fields in wire order, as udp_packet._HEADER_FIELDS names them in error messages. */
enum { F_TYPE, F_FLAGS, F_PAYLOAD_LEN, F_SSRC, F_TIMESTAMP, F_SEQUENCE };
static const char *const HEADER_FIELD_NAMES[] = {"type", "flags", "payload_len", "ssrc", "timestamp", "sequence"};
static const unsigned long long HEADER_FIELD_LIMITS[] = {0xFF, 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF};

typedef struct {
    PyObject *ciphers;                       /* dict: key bytes -> capsule of an EVP_CIPHER_CTX */
    Py_ssize_t cache_size;                   /* udp_packet.CIPHER_CACHE_SIZE */
    PyObject *packet_type;                   /* udp_packet.AudioPacket */
    PyObject *packet_slots[N_PACKET_FIELDS]; /* its member descriptors, in PACKET_FIELDS order */
    PyObject *empty_tuple;
    PyObject *malformed;   /* errors.MalformedPacket */
    PyObject *local_error; /* errors.LocalProtocolError */
} State;

typedef struct {
    unsigned char type, flags;
    uint16_t payload_len;
    uint32_t ssrc, timestamp, sequence;
} Header;

static inline State *get_state(PyObject *module) { return (State *)PyModule_GetState(module); }

/* ---- bytes on the wire ------------------------------------------------------------------------- */

static inline uint32_t load_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void store_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void write_header(unsigned char *out, const Header *h)
{
    out[0] = h->type;
    out[1] = h->flags;
    out[2] = (unsigned char)(h->payload_len >> 8);
    out[3] = (unsigned char)h->payload_len;
    store_be32(out + 4, h->ssrc);
    store_be32(out + 8, h->timestamp);
    store_be32(out + 12, h->sequence);
}

static void read_header(const unsigned char *in, Header *h)
{
    h->type = in[0];
    h->flags = in[1];
    h->payload_len = (uint16_t)((in[2] << 8) | in[3]);
    h->ssrc = load_be32(in + 4);
    h->timestamp = load_be32(in + 8);
    h->sequence = load_be32(in + 12);
}

/* ---- errors and arguments ---------------------------------------------------------------------- */

static void *raise_fmt(PyObject *type, const char *format, ...)
{
    va_list vargs;
    va_start(vargs, format);
    PyObject *message = PyUnicode_FromFormatV(format, vargs);
    va_end(vargs);
    if (message != NULL) {
        PyErr_SetObject(type, message);
        Py_DECREF(message);
    }
    return NULL;
}

static void *raise_openssl_error(void)
{
    char reason[256];
    ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
    ERR_clear_error();
    return raise_fmt(PyExc_RuntimeError, "OpenSSL AES-128-CTR failed: %s", reason);
}

/* Map METH_FASTCALL arguments onto `slots` in parameter order: the first `n_positional` parameters may
 * come by position or keyword, the rest by keyword only, and the first `n_required` must be given. */
static int parse_args(const char *func, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                      const char *const *names, int n_names, int n_positional, int n_required, PyObject **slots)
{
    for (int i = 0; i < n_names; i++) {
        slots[i] = i < nargs ? args[i] : NULL;
    }
    if (nargs > n_positional) {
        PyErr_Format(PyExc_TypeError, "%s() takes %d positional arguments but %zd were given", func,
                     n_positional, nargs);
        return -1;
    }
    Py_ssize_t n_keywords = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < n_keywords; k++) {
        PyObject *keyword = PyTuple_GET_ITEM(kwnames, k);
        int j = 0;
        while (j < n_names && PyUnicode_CompareWithASCIIString(keyword, names[j]) != 0) {
            j++;
        }
        if (j == n_names) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", func, keyword);
            return -1;
        }
        if (slots[j] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", func, names[j]);
            return -1;
        }
        slots[j] = args[nargs + k];
    }
    for (int i = 0; i < n_required; i++) {
        if (slots[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", func, names[i]);
            return -1;
        }
    }
    return 0;
}

/* One header field from a Python integer (or __index__ object), range-checked like udp_packet. */
static int header_field(State *st, PyObject *value, int field, uint32_t *out)
{
    PyObject *number = PyNumber_Index(value);
    if (number == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            return -1;
        }
        PyErr_Clear();
        raise_fmt(st->local_error, "UDP header field %s is not an integer: %R", HEADER_FIELD_NAMES[field], value);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(number, &overflow);
    Py_DECREF(number);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow != 0 || v < 0 || (unsigned long long)v > HEADER_FIELD_LIMITS[field]) {
        raise_fmt(st->local_error, "UDP header field %s out of range 0..%llu: %R", HEADER_FIELD_NAMES[field],
                  HEADER_FIELD_LIMITS[field], value);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* payload_len from a buffer's size, with the message udp_packet gives for len(payload). */
static int payload_len_field(State *st, Py_ssize_t size, uint16_t *out)
{
    if (size > MAX_FRAME_SIZE) {
        raise_fmt(st->local_error, "UDP header field payload_len out of range 0..%d: %zd", MAX_FRAME_SIZE, size);
        return -1;
    }
    *out = (uint16_t)size;
    return 0;
}

/* ---- AES-128-CTR ------------------------------------------------------------------------------- */

static void free_cipher_capsule(PyObject *capsule)
{
    EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)PyCapsule_GetPointer(capsule, CTX_CAPSULE));
}

static int evict_oldest(PyObject *ciphers)
{
    Py_ssize_t pos = 0;
    PyObject *oldest, *value;
    if (!PyDict_Next(ciphers, &pos, &oldest, &value)) {
        return 0;
    }
    Py_INCREF(oldest);
    int rc = PyDict_DelItem(ciphers, oldest);
    Py_DECREF(oldest);
    return rc;
}

/* The cipher context for `key`, as a new reference to its capsule: holding it keeps the context alive
 * even if code run by an allocation (a finalizer) fills the cache and evicts it meanwhile. */
static PyObject *cipher_for(State *st, PyObject *key)
{
    if (!PyBytes_Check(key)) {
        return raise_fmt(PyExc_TypeError, "AES-128 key must be bytes, not %.100s", Py_TYPE(key)->tp_name);
    }
    if (PyBytes_GET_SIZE(key) != KEY_SIZE) {
        return raise_fmt(st->local_error, "AES-128 key must be %d bytes, got %zd", KEY_SIZE, PyBytes_GET_SIZE(key));
    }
    PyObject *capsule = PyDict_GetItemWithError(st->ciphers, key);
    if (capsule != NULL) {
        return Py_NewRef(capsule);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return PyErr_NoMemory();
    }
    if (EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, (const unsigned char *)PyBytes_AS_STRING(key), NULL) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return raise_openssl_error();
    }
    capsule = PyCapsule_New(ctx, CTX_CAPSULE, free_cipher_capsule);
    if (capsule == NULL) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    if ((PyDict_GET_SIZE(st->ciphers) >= st->cache_size && evict_oldest(st->ciphers) < 0) ||
        PyDict_SetItem(st->ciphers, key, capsule) < 0) {
        Py_DECREF(capsule);
        return NULL;
    }
    return capsule;
}

/* XOR `size` bytes with the keystream that starts at counter block `iv` (encrypts and decrypts).
 * No Python code may run between the two EVP calls: the context is shared by every caller of the key. */
static int ctr_xor(PyObject *capsule, const unsigned char *iv, const unsigned char *in, unsigned char *out,
                   Py_ssize_t size)
{
    EVP_CIPHER_CTX *ctx = (EVP_CIPHER_CTX *)PyCapsule_GetPointer(capsule, CTX_CAPSULE);
    int written;
    if (ctx == NULL) {
        return -1;
    }
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1 ||
        (size > 0 && EVP_EncryptUpdate(ctx, out, &written, in, (int)size) != 1)) {
        raise_openssl_error();
        return -1;
    }
    return 0;
}

/* ---- packets ----------------------------------------------------------------------------------- */

/* A udp_packet.AudioPacket built like object.__new__ + object.__setattr__ per field, which is what the
 * frozen dataclass's own __init__ does, without its ~1.5 us of Python frames. */
static PyObject *new_packet(State *st, const Header *h, PyObject *payload)
{
    PyObject *values[N_PACKET_FIELDS] = {
        PyLong_FromUnsignedLong(h->ssrc), PyLong_FromUnsignedLong(h->timestamp),
        PyLong_FromUnsignedLong(h->sequence), Py_NewRef(payload),
        PyLong_FromLong(h->type), PyLong_FromLong(h->flags),
    };
    PyTypeObject *type = (PyTypeObject *)st->packet_type;
    PyObject *packet = NULL;
    for (int i = 0; i < N_PACKET_FIELDS; i++) {
        if (values[i] == NULL) {
            goto done;
        }
    }
    packet = type->tp_new(type, st->empty_tuple, NULL);
    for (int i = 0; packet != NULL && i < N_PACKET_FIELDS; i++) {
        PyObject *slot = st->packet_slots[i];
        if (Py_TYPE(slot)->tp_descr_set(slot, packet, values[i]) < 0) {
            Py_CLEAR(packet);
        }
    }
done:
    for (int i = 0; i < N_PACKET_FIELDS; i++) {
        Py_XDECREF(values[i]);
    }
    return packet;
}

/* Check a datagram like udp_packet.open_packet, then decrypt its payload into a new bytes object of
 * `offset` + payload_len bytes, at `offset` (room for a frame header the caller writes). */
static PyObject *decrypt_datagram(State *st, PyObject *key, PyObject *datagram, int exact_length,
                                  Py_ssize_t offset, Header *h)
{
    Py_buffer view;
    PyObject *capsule = NULL, *out = NULL;
    if (PyObject_GetBuffer(datagram, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)view.buf;
    Py_ssize_t size = view.len;
    if (size < HEADER_SIZE) {
        raise_fmt(st->malformed, "UDP packet too short: %zd bytes", size);
        goto done;
    }
    read_header(data, h);
    if (h->type != PACKET_TYPE_AUDIO) {
        char hex[3];
        snprintf(hex, sizeof hex, "%02x", h->type);
        raise_fmt(st->malformed, "UDP packet has wrong type 0x%s", hex);
        goto done;
    }
    Py_ssize_t end = HEADER_SIZE + h->payload_len;
    if (size < end || (exact_length && size != end)) {
        raise_fmt(st->malformed, "UDP length mismatch: header says %d bytes, packet carries %zd",
                  (int)h->payload_len, size - HEADER_SIZE);
        goto done;
    }
    capsule = cipher_for(st, key);
    if (capsule == NULL) {
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, offset + h->payload_len);
    if (out != NULL &&
        ctr_xor(capsule, data, data + HEADER_SIZE, (unsigned char *)PyBytes_AS_STRING(out) + offset,
                h->payload_len) < 0) {
        Py_CLEAR(out);
    }
done:
    Py_XDECREF(capsule);
    PyBuffer_Release(&view);
    return out;
}

/* The datagram for `h` (payload_len already set) carrying `payload` encrypted under `key`. */
static PyObject *seal_datagram(State *st, PyObject *key, const Header *h, const unsigned char *payload)
{
    PyObject *capsule = cipher_for(st, key);
    if (capsule == NULL) {
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, HEADER_SIZE + h->payload_len);
    if (out != NULL) {
        unsigned char *buf = (unsigned char *)PyBytes_AS_STRING(out);
        write_header(buf, h);
        if (ctr_xor(capsule, buf, payload, buf + HEADER_SIZE, h->payload_len) < 0) {
            Py_CLEAR(out);
        }
    }
    Py_DECREF(capsule);
    return out;
}

/* ---- the module's functions -------------------------------------------------------------------- */

PyDoc_STRVAR(pack_header_doc,
             "pack_header($module, /, payload_len, ssrc, timestamp, sequence, *, type=1, flags=0)\n--\n\n"
             "The 16-byte header, which is also the packet's AES-CTR initial counter block.");

static PyObject *pack_header(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"payload_len", "ssrc", "timestamp", "sequence", "type", "flags"};
    /* argument slots, then the wire order the fields are checked in (udp_packet's struct order) */
    static const int wire_order[] = {4, 5, 0, 1, 2, 3};
    PyObject *slots[6];
    uint32_t v[6] = {PACKET_TYPE_AUDIO, 0, 0, 0, 0, 0};
    State *st = get_state(module);
    if (parse_args("pack_header", args, nargs, kwnames, names, 6, 4, 4, slots) < 0) {
        return NULL;
    }
    for (int field = F_TYPE; field <= F_SEQUENCE; field++) {
        PyObject *value = slots[wire_order[field]];
        if (value != NULL && header_field(st, value, field, &v[field]) < 0) {
            return NULL;
        }
    }
    Header h = {(unsigned char)v[F_TYPE], (unsigned char)v[F_FLAGS], (uint16_t)v[F_PAYLOAD_LEN],
                v[F_SSRC], v[F_TIMESTAMP], v[F_SEQUENCE]};
    PyObject *out = PyBytes_FromStringAndSize(NULL, HEADER_SIZE);
    if (out != NULL) {
        write_header((unsigned char *)PyBytes_AS_STRING(out), &h);
    }
    return out;
}

PyDoc_STRVAR(seal_doc,
             "seal($module, /, key, ssrc, timestamp, sequence, payload)\n--\n\n"
             "Build the datagram carrying `payload` (one Opus frame), encrypted under the 16-byte `key`.");

static PyObject *seal(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"key", "ssrc", "timestamp", "sequence", "payload"};
    PyObject *a[5], *out = NULL;
    Py_buffer payload;
    State *st = get_state(module);
    if (parse_args("seal", args, nargs, kwnames, names, 5, 5, 5, a) < 0 ||
        PyObject_GetBuffer(a[4], &payload, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Header h = {PACKET_TYPE_AUDIO, 0, 0, 0, 0, 0};
    if (payload_len_field(st, payload.len, &h.payload_len) == 0 && header_field(st, a[1], F_SSRC, &h.ssrc) == 0 &&
        header_field(st, a[2], F_TIMESTAMP, &h.timestamp) == 0 &&
        header_field(st, a[3], F_SEQUENCE, &h.sequence) == 0) {
        out = seal_datagram(st, a[0], &h, (const unsigned char *)payload.buf);
    }
    PyBuffer_Release(&payload);
    return out;
}

PyDoc_STRVAR(open_packet_doc,
             "open_packet($module, /, key, datagram, *, exact_length=True)\n--\n\n"
             "Check and decrypt one datagram.\n\n"
             "`exact_length=True` is the firmware's rule (datagram length == 16 + payload_len); False is the\n"
             "gateway's (trailing bytes after the payload are tolerated and ignored).");

static PyObject *open_packet(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"key", "datagram", "exact_length"};
    PyObject *a[3];
    State *st = get_state(module);
    if (parse_args("open_packet", args, nargs, kwnames, names, 3, 2, 2, a) < 0) {
        return NULL;
    }
    int exact_length = a[2] == NULL ? 1 : PyObject_IsTrue(a[2]);
    if (exact_length < 0) {
        return NULL;
    }
    Header h;
    PyObject *payload = decrypt_datagram(st, a[0], a[1], exact_length, 0, &h);
    if (payload == NULL) {
        return NULL;
    }
    PyObject *packet = new_packet(st, &h, payload);
    Py_DECREF(payload);
    return packet;
}

PyDoc_STRVAR(udp_to_ws_doc,
             "udp_to_ws($module, /, key, datagram)\n--\n\n"
             "Gateway uplink in one call: a device datagram (gateway length rule) -> the chat-server frame.\n\n"
             "The frame is 8 zero bytes, the device's timestamp unchanged, the Opus length, then the Opus data.");

static PyObject *udp_to_ws(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"key", "datagram"};
    PyObject *a[2];
    State *st = get_state(module);
    if (parse_args("udp_to_ws", args, nargs, kwnames, names, 2, 2, 2, a) < 0) {
        return NULL;
    }
    Header h;
    PyObject *frame = decrypt_datagram(st, a[0], a[1], 0, HEADER_SIZE, &h);
    if (frame == NULL) {
        return NULL;
    }
    unsigned char *buf = (unsigned char *)PyBytes_AS_STRING(frame);
    memset(buf, 0, 8);
    store_be32(buf + 8, h.timestamp);
    store_be32(buf + 12, h.payload_len);
    PyObject *result = NULL, *packet = NULL;
    PyObject *payload = PyBytes_FromStringAndSize((const char *)buf + HEADER_SIZE, h.payload_len);
    if (payload != NULL && (packet = new_packet(st, &h, payload)) != NULL) {
        result = PyTuple_Pack(2, packet, frame);
    }
    Py_XDECREF(payload);
    Py_XDECREF(packet);
    Py_DECREF(frame);
    return result;
}

PyDoc_STRVAR(ws_to_udp_doc,
             "ws_to_udp($module, /, key, ws_frame, ssrc, sequence)\n--\n\n"
             "Gateway downlink in one call: a chat-server frame -> the device datagram.\n\n"
             "Reads the timestamp at offset 8 and the length at offset 12 (bytes 0..7 are ignored); the datagram\n"
             "carries the server's timestamp and the gateway's own `ssrc` and `sequence`.");

static PyObject *ws_to_udp(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"key", "ws_frame", "ssrc", "sequence"};
    PyObject *a[4], *out = NULL;
    Py_buffer view;
    State *st = get_state(module);
    if (parse_args("ws_to_udp", args, nargs, kwnames, names, 4, 4, 4, a) < 0 ||
        PyObject_GetBuffer(a[1], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)view.buf;
    Py_ssize_t size = view.len;
    /* framing.decode_gateway_frame's checks, then seal's, in the same order and words */
    if (size < HEADER_SIZE) {
        raise_fmt(st->malformed, "gateway frame too short: %zd bytes", size);
        goto done;
    }
    uint32_t declared = load_be32(data + 12);
    if (declared > MAX_FRAME_SIZE) {
        raise_fmt(st->malformed, "gateway frame declares %lu bytes, over %d", (unsigned long)declared,
                  MAX_FRAME_SIZE);
        goto done;
    }
    if (size < HEADER_SIZE + (Py_ssize_t)declared) {
        raise_fmt(st->malformed, "gateway frame declares %lu bytes but carries %zd", (unsigned long)declared,
                  size - HEADER_SIZE);
        goto done;
    }
    Header h = {PACKET_TYPE_AUDIO, 0, (uint16_t)declared, 0, load_be32(data + 8), 0};
    if (header_field(st, a[2], F_SSRC, &h.ssrc) == 0 && header_field(st, a[3], F_SEQUENCE, &h.sequence) == 0) {
        out = seal_datagram(st, a[0], &h, data + HEADER_SIZE);
    }
done:
    PyBuffer_Release(&view);
    return out;
}

#define FASTCALL(name) {#name, (PyCFunction)(void (*)(void))name, METH_FASTCALL | METH_KEYWORDS, name##_doc}

static PyMethodDef methods[] = {
    FASTCALL(pack_header), FASTCALL(seal), FASTCALL(open_packet), FASTCALL(udp_to_ws), FASTCALL(ws_to_udp),
    {NULL, NULL, 0, NULL},
};

/* ---- module state ------------------------------------------------------------------------------ */

static PyObject *import_attr(const char *module_name, const char *attr)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(module, attr);
    Py_DECREF(module);
    return value;
}

/* new_packet fills AudioPacket's slots directly, which is right only while it is a slotted dataclass
 * with exactly PACKET_FIELDS, no __new__ and no __post_init__: refuse to load otherwise. */
static int adopt_packet_type(State *st)
{
    PyObject *fields = NULL;
    int ok = PyType_Check(st->packet_type) &&
             ((PyTypeObject *)st->packet_type)->tp_new == PyBaseObject_Type.tp_new &&
             !PyObject_HasAttrString(st->packet_type, "__post_init__") &&
             (fields = PyObject_GetAttrString(st->packet_type, "__dataclass_fields__")) != NULL &&
             PyDict_Check(fields) && PyDict_GET_SIZE(fields) == N_PACKET_FIELDS;
    Py_ssize_t pos = 0;
    PyObject *name, *field;
    for (int i = 0; ok && i < N_PACKET_FIELDS; i++) {
        ok = PyDict_Next(fields, &pos, &name, &field) && PyUnicode_CompareWithASCIIString(name, PACKET_FIELDS[i]) == 0 &&
             (st->packet_slots[i] = PyObject_GetAttr(st->packet_type, name)) != NULL &&
             Py_IS_TYPE(st->packet_slots[i], &PyMemberDescr_Type);
    }
    Py_XDECREF(fields);
    PyErr_Clear();
    if (!ok) {
        PyErr_SetString(PyExc_ImportError, "pibuddy.xiaozhi.udp_packet.AudioPacket no longer has the slotted "
                                           "fields this extension fills: update _udp_packet.c");
        return -1;
    }
    return 0;
}

static int exec_module(PyObject *module)
{
    State *st = get_state(module);
    PyObject *cache_size = NULL;
    if ((st->ciphers = PyDict_New()) == NULL || (st->empty_tuple = PyTuple_New(0)) == NULL ||
        (st->malformed = import_attr("pibuddy.xiaozhi.errors", "MalformedPacket")) == NULL ||
        (st->local_error = import_attr("pibuddy.xiaozhi.errors", "LocalProtocolError")) == NULL ||
        (st->packet_type = import_attr("pibuddy.xiaozhi.udp_packet", "AudioPacket")) == NULL ||
        (cache_size = import_attr("pibuddy.xiaozhi.udp_packet", "CIPHER_CACHE_SIZE")) == NULL) {
        return -1;
    }
    st->cache_size = PyLong_AsSsize_t(cache_size);
    Py_DECREF(cache_size);
    if ((st->cache_size == -1 && PyErr_Occurred()) || adopt_packet_type(st) < 0) {
        return -1;
    }
    return PyModule_AddStringConstant(module, "OPENSSL_VERSION", OpenSSL_version(OPENSSL_VERSION));
}

static int traverse_module(PyObject *module, visitproc visit, void *arg)
{
    State *st = get_state(module);
    Py_VISIT(st->ciphers);
    Py_VISIT(st->packet_type);
    for (int i = 0; i < N_PACKET_FIELDS; i++) {
        Py_VISIT(st->packet_slots[i]);
    }
    Py_VISIT(st->empty_tuple);
    Py_VISIT(st->malformed);
    Py_VISIT(st->local_error);
    return 0;
}

static int clear_module(PyObject *module)
{
    State *st = get_state(module);
    Py_CLEAR(st->ciphers);
    Py_CLEAR(st->packet_type);
    for (int i = 0; i < N_PACKET_FIELDS; i++) {
        Py_CLEAR(st->packet_slots[i]);
    }
    Py_CLEAR(st->empty_tuple);
    Py_CLEAR(st->malformed);
    Py_CLEAR(st->local_error);
    return 0;
}

static void free_module(void *module) { clear_module((PyObject *)module); }

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef udp_packet_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pibuddy.xiaozhi._udp_packet",
    .m_doc = "The UDP audio packet path (header + AES-128-CTR, gateway re-framing) in C; see udp_packet.py.",
    .m_size = sizeof(State),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = traverse_module,
    .m_clear = clear_module,
    .m_free = free_module,
};

PyMODINIT_FUNC PyInit__udp_packet(void) { return PyModuleDef_Init(&udp_packet_module); }
