#!/usr/bin/python3
"""Dump the protobuf schema that Debian's crit (pycriu) was built with, as JSON.

Run with the system interpreter (it has google.protobuf):
    /usr/bin/python3 tools/crit-compat/dump_descriptors.py [PYCRIU_DIR] > crit-schema.json

Output:
  {
    "pycriu": "<dir>", "protobuf": "<version>",
    "files":    { "<proto file>": "<module>" },
    "messages": { "<full name>": { "file": ..., "fields": [ {name, number, type,
                  label, type_name, default, packed, criu: {opt: value}} ] } },
    "enums":    { "<full name>": { "file": ..., "values": { "<NAME>": number } } },
    "extensions": { "<full name>": { "file", "extendee", "number", "type", "label", "type_name" } }
  }
Full names have no leading dot (CRIU's protos declare no package), nested types are
"outer.inner". type is the proto keyword ("uint32", "message", "enum", ...), label is
"optional" / "required" / "repeated", default is protoc's text form or null, packed is
true only where [packed = true] is set explicitly.
"""
import glob
import importlib
import json
import os
import sys

from google.protobuf import descriptor_pb2
import google.protobuf

PYCRIU = sys.argv[1] if len(sys.argv) > 1 else '/usr/lib/python3/dist-packages/pycriu'
IMAGES = os.path.join(PYCRIU, 'images')

# pycriu's generated modules import each other as top-level modules ("import opts_pb2").
sys.path.insert(0, IMAGES)
sys.path.insert(1, PYCRIU)

FDP = descriptor_pb2.FieldDescriptorProto
TYPES = {v: k[len('TYPE_'):].lower() for k, v in FDP.Type.items()}
LABELS = {v: k[len('LABEL_'):].lower() for k, v in FDP.Label.items()}


def load_modules():
    names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(IMAGES, '*_pb2.py')))
    mods = [importlib.import_module(n) for n in names]
    if os.path.exists(os.path.join(PYCRIU, 'rpc_pb2.py')):
        mods.append(importlib.import_module('rpc_pb2'))
    return mods


def criu_options(field_proto, criu_ext):
    """The (criu).* options of a field, as {name: value}, only those that are set."""
    out = {}
    if not field_proto.HasField('options'):
        return out
    opts = field_proto.options
    if criu_ext is not None and opts.HasExtension(criu_ext):
        ext = opts.Extensions[criu_ext]
        for fd, value in ext.ListFields():
            out[fd.name] = value
    return out


def describe_field(f, criu_ext):
    return {
        'name': f.name,
        'number': f.number,
        'type': TYPES[f.type],
        'label': LABELS[f.label],
        'type_name': f.type_name.lstrip('.') if f.type_name else None,
        'default': f.default_value if f.HasField('default_value') else None,
        'packed': bool(f.options.packed) if f.HasField('options') and f.options.HasField('packed') else False,
        'criu': criu_options(f, criu_ext),
    }


def walk_extensions(exts, prefix, filename, criu_ext, result):
    for x in exts:
        d = describe_field(x, criu_ext)
        d['file'] = filename
        d['extendee'] = x.extendee.lstrip('.')
        result['extensions'][prefix + x.name] = d


def walk_message(msg, prefix, filename, criu_ext, result):
    full = prefix + msg.name
    fields = [describe_field(f, criu_ext) for f in msg.field]
    result['messages'][full] = {'file': filename, 'fields': fields}
    walk_extensions(msg.extension, full + '.', filename, criu_ext, result)
    for e in msg.enum_type:
        walk_enum(e, full + '.', filename, result)
    for m in msg.nested_type:
        walk_message(m, full + '.', filename, criu_ext, result)


def walk_enum(enum, prefix, filename, result):
    result['enums'][prefix + enum.name] = {
        'file': filename,
        'values': {v.name: v.number for v in enum.value},
    }


def main():
    mods = load_modules()
    criu_ext = None
    try:
        import opts_pb2
        criu_ext = opts_pb2.criu
    except (ImportError, AttributeError):
        pass

    result = {'pycriu': PYCRIU, 'protobuf': google.protobuf.__version__,
              'files': {}, 'messages': {}, 'enums': {}, 'extensions': {}}
    for mod in mods:
        fd = mod.DESCRIPTOR
        fdp = descriptor_pb2.FileDescriptorProto()
        # Parse the serialized file again so extensions in FieldOptions are resolved
        # against the (now complete) generated pool.
        fdp.ParseFromString(fd.serialized_pb)
        result['files'][fdp.name] = mod.__name__
        prefix = fdp.package + '.' if fdp.package else ''
        for e in fdp.enum_type:
            walk_enum(e, prefix, fdp.name, result)
        for m in fdp.message_type:
            walk_message(m, prefix, fdp.name, criu_ext, result)
        walk_extensions(fdp.extension, prefix, fdp.name, criu_ext, result)

    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
