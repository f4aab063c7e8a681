/**
 * The `ctypes` HumanEval programs see in the code sandbox. The real one cannot be allowed: it reads
 * and writes raw memory (even without an audit event, e.g. `c_char_p(address).value`), which would
 * let a program find the completion marker (see pythonRunner.ts), and its native part `_ctypes` stays
 * refused. But numpy, pandas, scipy, scikit-learn and sympy import ctypes at import time (for
 * optional features, Windows errors or sizes), so refusing the import would fail answers that use
 * them and pass in the reference. This pure-Python stand-in lets them import: types and sizes are
 * plain Python values, and every operation that would touch memory or call native code raises.
 */
export const CTYPES_STAND_IN_SOURCE = `"""ctypes stand-in of ptb's code sandbox: types and sizes only; memory access and calls raise."""
class ArgumentError(Exception):
    pass
def _refuse(*args, **kwargs):
    raise OSError("ctypes is not available in the code sandbox")
class _CData:
    _size_ = 8
    def __init__(self, value=None, *args, **kwargs):
        self.value = value
class _SimpleCData(_CData):
    pass
class _Pointer(_CData):
    pass
class Structure(_CData):
    pass
class Union(_CData):
    pass
class BigEndianStructure(Structure):
    pass
class LittleEndianStructure(Structure):
    pass
class Array(_CData):
    pass
class _CFuncPtr(_CData):
    def __call__(self, *args, **kwargs):
        _refuse()
class CDLL:
    def __init__(self, *args, **kwargs):
        _refuse()
PyDLL = CDLL
def CFUNCTYPE(restype, *argtypes, **kwargs):
    return type("CFunctionType", (_CFuncPtr,), {"_restype_": restype, "_argtypes_": argtypes})
PYFUNCTYPE = CFUNCTYPE
def POINTER(target):
    return type("LP_" + getattr(target, "__name__", "c"), (_Pointer,), {"_type_": target})
_SIZES = dict(c_bool=1, c_char=1, c_wchar=4, c_byte=1, c_ubyte=1, c_short=2, c_ushort=2, c_int=4, c_uint=4,
    c_long=8, c_ulong=8, c_longlong=8, c_ulonglong=8, c_size_t=8, c_ssize_t=8, c_float=4, c_double=8,
    c_longdouble=16, c_char_p=8, c_wchar_p=8, c_void_p=8, c_int8=1, c_int16=2, c_int32=4, c_int64=8,
    c_uint8=1, c_uint16=2, c_uint32=4, c_uint64=8, py_object=8)
for _name, _size in _SIZES.items():
    globals()[_name] = type(_name, (_SimpleCData,), {"_size_": _size})
def sizeof(obj):
    return getattr(obj, "_size_", 8)
def alignment(obj):
    return sizeof(obj)
def cast(obj, typ):
    return typ(obj)
def pointer(obj):
    return POINTER(type(obj))(obj)
def byref(obj, offset=0):
    return obj
addressof = string_at = wstring_at = memmove = memset = resize = _refuse
create_string_buffer = create_unicode_buffer = get_errno = set_errno = _refuse
class LibraryLoader:
    def __init__(self, dlltype):
        self._dlltype = dlltype
    def __getattr__(self, name):
        _refuse()
    def LoadLibrary(self, name):
        _refuse()
cdll = LibraryLoader(CDLL)
pydll = LibraryLoader(PyDLL)
pythonapi = None
RTLD_GLOBAL = RTLD_LOCAL = 0
`;

/** Its submodules that libraries import by name. */
export const CTYPES_STAND_IN_SUBMODULES: Readonly<Record<string, string>> = {
  'ctypes.wintypes':
    'from ctypes import *\nBYTE = c_byte\nWORD = c_ushort\nDWORD = c_ulong\nBOOL = c_long\nHANDLE = LPVOID = c_void_p\nLPCWSTR = LPWSTR = c_wchar_p\nLPCSTR = LPSTR = c_char_p\n',
  'ctypes.util': 'def find_library(name):\n    return None\n',
};
