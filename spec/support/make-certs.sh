#!/bin/sh
# make-certs.sh DIR: test certificates for the TLS specs, made fresh with openssl (EC P-256,
# valid 2 days):
#   ca.pem ca.key               the test CA
#   server.pem server.key       signed by the CA; CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   client.pem client.key       signed by the CA; CN=lh-test-client, clientAuth
#   wrong-ca.pem wrong-ca.key   an unrelated CA (verifies nothing we serve)
#   wrong-client.pem wrong-client.key  a client certificate signed by the wrong CA
# Prints nothing on success; exits non-zero (with openssl's message) on failure.
set -eu
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
days=2

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days "$days" -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem" 2>/dev/null
}

leaf() { # name subject ca extfile-contents
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -sha256 -days "$days" \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=lh-devserver test CA"
ca wrong-ca "/CN=some other CA"
leaf server "/CN=localhost" ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
leaf client "/CN=lh-test-client" ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
leaf wrong-client "/CN=lh-wrong-client" wrong-ca "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
rm -f ./*.srl
# sanity: the chain verifies (fails loudly otherwise)
openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
