#!/usr/bin/python3
"""jwt_vectors.py - test keys and tokens for tests/test_jwt.c.

Usage: /usr/bin/python3 tests/jwt_vectors.py OUTDIR

Writes into OUTDIR (which must exist):
  hs256.secret        32 random bytes (raw)
  rsa_pub.pem         RSA-2048 public key, rsa_priv.pem its private key
  ec_pub.pem          EC P-256 public key, ec_priv.pem its private key
  rsa1024_pub.pem     too-small RSA key (the verifier refuses it)
  p384_pub.pem        EC P-384 key (ES256 needs P-256)
  ed25519_pub.pem     Ed25519 key (unsupported key type)
  <name>.jwt          one compact JWS per test case, see TOKENS below

Only the Python standard library and the `openssl` command line tool are used, so
ringcast never produces its own test tokens. ES256 signatures come from
`openssl dgst -sha256 -sign` (DER) and are converted to the raw r||s form of
RFC 7518 section 3.4 here. All times are relative to NOW, which test_jwt.c
passes as the verification time.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys

NOW = 1700000000
ISS = "ringcast-test"
AUD = "ringcast"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def openssl(*args, stdin=None) -> bytes:
    try:
        res = subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        sys.exit("jwt_vectors.py: the openssl command is missing; "
                 "install the Debian package openssl")
    if res.returncode != 0:
        sys.exit("jwt_vectors.py: openssl %s failed: %s" % (" ".join(args), res.stderr.decode()))
    return res.stdout


def der_read(buf: bytes, pos: int, tag: int):
    """Read one DER TLV of the given tag at pos; return (value, next_pos)."""
    if buf[pos] != tag:
        raise ValueError("DER: expected tag 0x%02x at %d" % (tag, pos))
    pos += 1
    n = buf[pos]
    pos += 1
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    return buf[pos:pos + n], pos + n


def ecdsa_der_to_raw(der: bytes) -> bytes:
    seq, _ = der_read(der, 0, 0x30)
    r, pos = der_read(seq, 0, 0x02)
    s, _ = der_read(seq, pos, 0x02)
    r = int.from_bytes(r, "big")
    s = int.from_bytes(s, "big")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Signer:
    def __init__(self, out: str):
        self.out = out
        self.secret = os.urandom(32)
        self.rsa_priv = os.path.join(out, "rsa_priv.pem")
        self.ec_priv = os.path.join(out, "ec_priv.pem")
        with open(os.path.join(out, "rsa_pub.pem"), "rb") as f:
            self.rsa_pub_pem = f.read()

    def sign(self, alg: str, signing_input: bytes, key=None) -> bytes:
        if alg == "HS256":
            return hmac.new(key if key is not None else self.secret, signing_input,
                            hashlib.sha256).digest()
        if alg == "RS256":
            return openssl("dgst", "-sha256", "-sign", self.rsa_priv, stdin=signing_input)
        if alg == "ES256":
            der = openssl("dgst", "-sha256", "-sign", self.ec_priv, stdin=signing_input)
            return ecdsa_der_to_raw(der)
        raise ValueError(alg)

    def token(self, header, claims, alg=None, key=None) -> str:
        h = b64url(json.dumps(header, separators=(",", ":")).encode())
        p = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = (h + "." + p).encode("ascii")
        sig = self.sign(alg or header["alg"], signing_input, key)
        return h + "." + p + "." + b64url(sig)


def good_claims(**kw):
    c = {"sub": "alice", "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600, "iss": ISS,
         "aud": AUD, "topics": ["chat.>", "user.alice.>"]}
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def flip_last_sig_byte(tok: str) -> str:
    h, p, s = tok.split(".")
    raw = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return h + "." + p + "." + b64url(bytes(raw))


def sized_token(s: Signer, want: int) -> str:
    """A valid HS256 token of exactly want bytes (pads a claim, tries a few headers)."""
    for header in ({"alg": "HS256"}, {"alg": "HS256", "typ": "JWT"}, {"typ": "JWT", "alg": "HS256"},
                   {"alg": "HS256", "x": 1}):
        for pad in range(want * 3 // 4 - 400, want * 3 // 4):
            tok = s.token(header, good_claims(pad="p" * pad))
            if len(tok) == want:
                return tok
    raise SystemExit("jwt_vectors.py: cannot build a token of %d bytes" % want)


def make_keys(out: str):
    def path(name):
        return os.path.join(out, name)

    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
            path("rsa_priv.pem"))
    openssl("pkey", "-in", path("rsa_priv.pem"), "-pubout", "-out", path("rsa_pub.pem"))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
            path("ec_priv.pem"))
    openssl("pkey", "-in", path("ec_priv.pem"), "-pubout", "-out", path("ec_pub.pem"))
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out",
            path("rsa1024_priv.pem"))
    openssl("pkey", "-in", path("rsa1024_priv.pem"), "-pubout", "-out", path("rsa1024_pub.pem"))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out",
            path("p384_priv.pem"))
    openssl("pkey", "-in", path("p384_priv.pem"), "-pubout", "-out", path("p384_pub.pem"))
    openssl("genpkey", "-algorithm", "ED25519", "-out", path("ed25519_priv.pem"))
    openssl("pkey", "-in", path("ed25519_priv.pem"), "-pubout", "-out", path("ed25519_pub.pem"))


def make_tokens(s: Signer):
    hs = {"alg": "HS256", "typ": "JWT"}
    rs = {"alg": "RS256", "typ": "JWT"}
    es = {"alg": "ES256", "typ": "JWT"}
    t = {}
    t["hs256_valid"] = s.token(hs, good_claims())
    t["rs256_valid"] = s.token(rs, good_claims())
    t["es256_valid"] = s.token(es, good_claims())
    t["hs256_minimal"] = s.token({"alg": "HS256"}, {"sub": "bob"})
    t["hs256_expired"] = s.token(hs, good_claims(exp=NOW - 42))
    t["hs256_exp_within_leeway"] = s.token(hs, good_claims(exp=NOW - 20))
    t["hs256_exp_now"] = s.token(hs, good_claims(exp=NOW))
    t["hs256_not_yet_valid"] = s.token(hs, good_claims(nbf=NOW + 600))
    t["hs256_nbf_within_leeway"] = s.token(hs, good_claims(nbf=NOW + 20))
    t["hs256_exp_not_number"] = s.token(hs, good_claims(exp="soon"))
    t["hs256_exp_real"] = s.token(hs, good_claims(exp=NOW + 0.5))
    t["hs256_bad_sig"] = s.token(hs, good_claims(), key=os.urandom(32))
    t["rs256_bad_sig"] = flip_last_sig_byte(t["rs256_valid"])
    t["es256_bad_sig"] = flip_last_sig_byte(t["es256_valid"])
    # ES256 signature in DER form, as some broken signers send it.
    h = b64url(json.dumps(es, separators=(",", ":")).encode())
    p = b64url(json.dumps(good_claims(), separators=(",", ":")).encode())
    der = openssl("dgst", "-sha256", "-sign", s.ec_priv, stdin=(h + "." + p).encode())
    t["es256_der_sig"] = h + "." + p + "." + b64url(der)
    none_sig_input = b64url(b'{"alg":"none","typ":"JWT"}') + "." + \
        b64url(json.dumps(good_claims()).encode())
    t["alg_none"] = none_sig_input + "."
    t["alg_none_mixed_case"] = b64url(b'{"alg":"nOnE"}') + "." + \
        b64url(json.dumps(good_claims()).encode()) + "."
    t["alg_missing"] = s.token({"typ": "JWT"}, good_claims(), alg="HS256")
    t["alg_not_string"] = s.token({"alg": 256}, good_claims(), alg="HS256")
    t["alg_hs512"] = s.token({"alg": "HS512"}, good_claims(), alg="HS256")
    t["crit_header"] = s.token({"alg": "HS256", "crit": ["exp"]}, good_claims())
    # Algorithm confusion: HS256 keyed with the RSA public key PEM as the secret.
    t["hs256_confusion"] = s.token(hs, good_claims(), key=s.rsa_pub_pem)
    t["header_not_json"] = b64url(b"not json") + "." + \
        t["hs256_valid"].split(".", 1)[1]
    t["header_not_object"] = b64url(b'["HS256"]') + "." + t["hs256_valid"].split(".", 1)[1]
    hp = t["hs256_valid"].split(".")
    t["malformed_b64_header"] = hp[0][:5] + "*" + hp[0][6:] + "." + hp[1] + "." + hp[2]
    t["malformed_b64_padding"] = hp[0] + "." + hp[1] + "." + hp[2] + "="
    t["malformed_b64_std_alphabet"] = hp[0] + "." + hp[1] + "+/." + hp[2]
    t["two_parts"] = hp[0] + "." + hp[1]
    t["four_parts"] = t["hs256_valid"] + ".e30"
    t["huge"] = s.token(hs, good_claims(pad="x" * 9000))
    t["max_size"] = sized_token(s, 8192)
    t["max_size_plus_one"] = sized_token(s, 8193)
    t["missing_sub"] = s.token(hs, good_claims(sub=None))
    t["sub_not_string"] = s.token(hs, good_claims(sub=42))
    t["sub_too_long"] = s.token(hs, good_claims(sub="u" * 129))
    t["sub_max_len"] = s.token(hs, good_claims(sub="u" * 128))
    t["wrong_iss"] = s.token(hs, good_claims(iss="someone-else"))
    t["missing_iss"] = s.token(hs, good_claims(iss=None))
    t["wrong_aud"] = s.token(hs, good_claims(aud="other"))
    t["aud_array"] = s.token(hs, good_claims(aud=["other", AUD]))
    t["aud_array_wrong"] = s.token(hs, good_claims(aud=["other", "more"]))
    t["topics_too_many"] = s.token(hs, good_claims(topics=["t%d" % i for i in range(17)]))
    t["topics_not_array"] = s.token(hs, good_claims(topics="chat.>"))
    t["payload_not_object"] = s.token(hs, ["sub", "alice"])
    return t


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: jwt_vectors.py OUTDIR")
    out = sys.argv[1]
    make_keys(out)
    s = Signer(out)
    with open(os.path.join(out, "hs256.secret"), "wb") as f:
        f.write(s.secret)
    for name, tok in make_tokens(s).items():
        with open(os.path.join(out, name + ".jwt"), "w", encoding="ascii") as f:
            f.write(tok)


if __name__ == "__main__":
    main()
