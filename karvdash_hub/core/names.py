"""The shapes of Kubernetes names, checked wherever a name is made from
user input (settings, datasets, service templates)."""

import re

# RFC 1123 label: namespaces, most object names, PVCs, volume names.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# RFC 1123 subdomain: names of most other objects.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# Label values may be empty.
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
