/* --env-file: docker's format. One KEY=VALUE per line, taken literally
 * (no quotes, no expansion); a bare KEY takes the host's value and is
 * skipped when the host has none; blank lines and # comments are
 * ignored. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define ENV_FILE_MAX_LINE (64 * 1024)

static int add_line(capsa_vm_config *cfg, const char *path, unsigned line_no, char *line)
{
	capsa_error err = { 0 };
	char *eq = strchr(line, '=');
	size_t key_len = eq ? (size_t)(eq - line) : strlen(line);
	char *entry = NULL;

	for (size_t i = 0; i < key_len; i++) {
		if (isspace((unsigned char)line[i])) {
			cli_error("%s:%u: variable '%.*s' contains whitespace", path, line_no, (int)key_len, line);
			return -1;
		}
	}
	if (!eq) {
		const char *value = getenv(line);
		if (!value)
			return 0;
		if (asprintf(&entry, "%s=%s", line, value) < 0) {
			cli_error("out of memory");
			return -1;
		}
	}
	int r = capsa_vm_config_add_env(cfg, entry ? entry : line, &err);
	free(entry);
	if (r < 0)
		cli_error("%s:%u: %s", path, line_no, err.message);
	return r;
}

int cli_add_env_file(capsa_vm_config *cfg, const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned line_no = 0;
	ssize_t len;
	int r = 0;

	if (!f) {
		cli_error("--env-file %s: %s", path, strerror(errno));
		return -1;
	}
	while (r == 0 && (len = getline(&line, &cap, f)) >= 0) {
		line_no++;
		if (len > ENV_FILE_MAX_LINE) {
			cli_error("%s:%u: line longer than %d bytes", path, line_no, ENV_FILE_MAX_LINE);
			r = -1;
			break;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		char *start = line;
		while (isspace((unsigned char)*start))
			start++;
		if (*start == '\0' || *start == '#')
			continue;
		if (memchr(line, '\0', (size_t)len)) {
			cli_error("%s:%u: line contains a NUL byte", path, line_no);
			r = -1;
			break;
		}
		r = add_line(cfg, path, line_no, start);
	}
	if (r == 0 && ferror(f)) {
		cli_error("--env-file %s: read error", path);
		r = -1;
	}
	free(line);
	fclose(f);
	return r;
}
