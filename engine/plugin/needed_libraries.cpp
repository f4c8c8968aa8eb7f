#include "engine/plugin/needed_libraries.hpp"

#include <dlfcn.h>
#include <elf.h>

#include <cstring>
#include <fstream>

namespace spillway::plugin {

namespace {

template <class T>
bool read_at(std::ifstream& in, uint64_t offset, T* out, size_t count = 1) {
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(sizeof(T) * count));
    return static_cast<bool>(in);
}

}  // namespace

std::vector<std::string> needed_libraries(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    Elf64_Ehdr eh{};
    if (!read_at(in, 0, &eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shnum > 4096)
        return {};
    std::vector<Elf64_Shdr> sections(eh.e_shnum);
    if (!read_at(in, eh.e_shoff, sections.data(), sections.size())) return {};
    for (const Elf64_Shdr& dynamic : sections) {
        if (dynamic.sh_type != SHT_DYNAMIC || dynamic.sh_link >= sections.size()) continue;
        const Elf64_Shdr& strings = sections[dynamic.sh_link];
        if (strings.sh_size > (64u << 20) || dynamic.sh_size > (16u << 20)) return {};
        std::string text(strings.sh_size, '\0');
        std::vector<Elf64_Dyn> entries(dynamic.sh_size / sizeof(Elf64_Dyn));
        if (!read_at(in, strings.sh_offset, text.data(), text.size()) ||
            !read_at(in, dynamic.sh_offset, entries.data(), entries.size()))
            return {};
        std::vector<std::string> needed;
        for (const Elf64_Dyn& d : entries) {
            if (d.d_tag == DT_NULL) break;
            if (d.d_tag == DT_NEEDED && d.d_un.d_val < text.size()) needed.emplace_back(text.c_str() + d.d_un.d_val);
        }
        return needed;
    }
    return {};
}

std::string missing_sanitizer_runtime(const std::string& path) {
    for (const std::string& lib : needed_libraries(path)) {
        const bool first_only = lib.rfind("libasan.so", 0) == 0 || lib.rfind("libtsan.so", 0) == 0 ||
                                lib.rfind("libhwasan.so", 0) == 0 || lib.rfind("liblsan.so", 0) == 0;
        if (!first_only) continue;
        // RTLD_NOLOAD: only asks whether the process already has it.
        if (void* h = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
            ::dlclose(h);
            continue;
        }
        return lib;
    }
    return {};
}

}  // namespace spillway::plugin
