#!/usr/bin/env bash
# Regenerate vmail's IVR prompts (prompts/en/, prompts/ru/) with espeak-ng and sox.
#
# Needs the Debian packages `espeak-ng` and `sox` (plus `libsox-fmt-all` for
# the one Ogg/Vorbis file):  apt-get install espeak-ng sox libsox-fmt-all
#
# Run by hand from anywhere:  bash prompts/generate.sh [en] [ru]
# (no argument = every language). It rewrites the language folders from
# scratch, so the committed set always equals what this script makes.
#
# Files are 8000 Hz mono 16-bit WAV (what vmail plays), trimmed of leading
# and trailing silence and peak-normalised to -3 dBFS. On purpose a few are
# stored otherwise so that the loader's decode/resample path runs on real
# files: `beep` is 16 kHz FLAC, `goodbye` is 16 kHz Ogg/Vorbis.
set -euo pipefail

missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v sox >/dev/null 2>&1 || missing+=(sox)
if ((${#missing[@]})); then
    echo "generate.sh: missing ${missing[*]}; install with: apt-get install espeak-ng sox libsox-fmt-all" >&2
    exit 1
fi
if ! sox -h 2>/dev/null | grep -qw vorbis; then
    echo "generate.sh: this sox cannot write Ogg/Vorbis; install libsox-fmt-all" >&2
    exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Voice settings per language: espeak-ng voice, words per minute, pitch.
voice_en=(-v en-us -s 150 -p 45)
voice_ru=(-v ru -s 140 -p 45)

# speak LANG NAME TEXT [PAD_SECONDS]
speak() {
    local lang="$1" name="$2" text="$3" pad="${4:-0.08}"
    local out="$here/$lang/$name.wav" raw="$work/raw.wav"
    local -n voice="voice_$lang"
    mkdir -p "$(dirname "$out")"
    espeak-ng "${voice[@]}" -w "$raw" -- "$text"
    # Trim silence at both ends (reverse trick), resample, normalise, then a
    # short tail of silence so that concatenated prompts do not run together.
    sox -R "$raw" -r 8000 -c 1 -b 16 "$out" \
        silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse \
        gain -6 rate -v 8000 gain -n -3 pad 0 "$pad"
}

# The beep: 1 kHz, 400 ms, 10 ms fades; stored as 16 kHz FLAC.
make_beep() {
    local lang="$1"
    sox -R -n -r 16000 -c 1 -b 16 "$here/$lang/beep.flac" \
        synth 0.4 sine 1000 fade h 0.01 0.4 0.01 norm -3
}

# Re-store one spoken prompt as 16 kHz Ogg/Vorbis.
to_ogg() {
    local lang="$1" name="$2"
    local -n voice="voice_$lang"
    espeak-ng "${voice[@]}" -w "$work/raw.wav" -- "$3"
    sox -R "$work/raw.wav" -r 16000 -c 1 -C 3 "$here/$lang/$name.ogg" \
        silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse \
        gain -6 rate -v 16000 gain -n -3 pad 0 0.08
}

# Read "name|text" lines from stdin and speak each one.
speak_table() {
    local lang="$1" name text
    while IFS='|' read -r name text; do
        [[ -z "$name" || "$name" == \#* ]] && continue
        case "$name" in
            digits/* | numbers/* | star | pound | oh) speak "$lang" "$name" "$text" 0.04 ;;
            *) speak "$lang" "$name" "$text" ;;
        esac
    done
}

gen_en() {
    rm -rf "$here/en"
    mkdir -p "$here/en"
    speak_table en <<'EOF'
# Deposit flow
greeting-intro|The person at extension
is-busy|is busy.
is-unavailable|is not available.
leave-message|Please leave your message after the tone. When done, hang up or press pound.
message-saved|Your message has been saved. Goodbye.
mailbox-full|Sorry, the mailbox is full. Goodbye.
max-length|The maximum message length has been reached.
cannot-take|Sorry, your message cannot be taken now. Please try again later.
review-message|Press 1 to accept your message, 2 to listen to it, 3 to [[r,i:rIk'o@d]] it, or 4 to mark it urgent.
marked-urgent|Your message is marked urgent.
urgent-removed|Your message is no longer marked urgent.
transferring|Please hold. Transferring your call.
transfer-failed|Sorry, the transfer is not possible.
# Digits and numbers
digits/0|zero
digits/1|one
digits/2|two
digits/3|three
digits/4|four
digits/5|five
digits/6|six
digits/7|seven
digits/8|eight
digits/9|nine
oh|oh
star|star
pound|pound
numbers/10|ten
numbers/11|eleven
numbers/12|twelve
numbers/13|thirteen
numbers/14|fourteen
numbers/15|fifteen
numbers/16|sixteen
numbers/17|seventeen
numbers/18|eighteen
numbers/19|nineteen
numbers/20|twenty
numbers/30|thirty
numbers/40|forty
numbers/50|fifty
numbers/60|sixty
numbers/70|seventy
numbers/80|eighty
numbers/90|ninety
numbers/hundred|hundred
numbers/thousand|thousand
numbers/million|million
numbers/billion|billion
# Retrieval
enter-mailbox|Please enter your mailbox number, followed by pound.
enter-pin|Please enter your password, followed by pound.
login-incorrect|Login incorrect.
mailbox-locked|This mailbox is temporarily locked. Goodbye.
please-wait|Please wait.
try-later|The system is busy. Please try again later. Goodbye.
you-have|You have
new|new
old|old
message|message
messages|messages
no-messages|no messages
and|and
main-menu|Press 1 to listen to new messages, 2 to change folders, 0 for mailbox options, star for help, or pound to exit.
message-number|Message
first-message|First message.
last-message|There are no more messages.
no-more-messages|No more messages.
message-menu|Press 3 for the envelope, 4 for the previous message, 5 to repeat, 6 for the next message, 7 to delete, 8 to forward, 9 to save, or pound for the main menu.
deleted|Message deleted.
undeleted|Message undeleted.
saved|Message saved.
forward-enter-mailbox|Enter the mailbox number to forward to, followed by pound.
forwarded|Message forwarded.
invalid-mailbox|Invalid mailbox.
received-at|Received
from|From
unknown-caller|an unknown caller
options-menu|Press 1 to record your unavailable greeting, 2 for your busy greeting, 3 to record your name, 4 for your temporary greeting, 5 to change your password, or star to return.
record-after-tone|[[rIk'o@d]] after the tone. Press pound when done.
review-recording|Press 1 to accept, 2 to listen, or 3 to [[r,i:rIk'o@d]].
greeting-saved|Your greeting has been saved.
temp-greeting-menu|Press 1 to record your temporary greeting, or 2 to erase it.
temp-greeting-erased|Your temporary greeting has been erased.
enter-new-pin|Please enter your new password, followed by pound.
reenter-pin|Please enter it again.
pin-mismatch|The passwords do not match.
pin-invalid|That password is not allowed. Use at least four digits, not all the same and not a sequence.
pin-changed|Your password has been changed.
invalid-option|Invalid option.
not-understood|Sorry, I did not understand.
help|While listening to a message, press 3 for the envelope, 5 to repeat, 6 for the next message, 7 to delete, and 9 to save. Press pound to go back, or star to hear this help again.
# Folders (Asterisk's keys: 0 new, 1 old, 2 work, 3 family, 4 friends, 5-9 numbered)
folders-menu|Press 0 for new messages, 1 for old messages, 2 for work messages, 3 for family messages, 4 for friends messages, or pound to cancel.
save-to-folder|Which folder should I save the message to?
saved-in|Message saved in
folder-new|new messages
folder-old|old messages
folder-work|work
folder-family|family
folder-friends|friends
folder-5|folder five
folder-6|folder six
folder-7|folder seven
folder-8|folder eight
folder-9|folder nine
some-unreachable|Some messages cannot be reached right now.
cannot-now|That cannot be done right now. Please try again later.
# Dates and times
at|at
am|A.M.
pm|P.M.
oclock|o'clock
today|today
yesterday|yesterday
days/monday|Monday
days/tuesday|Tuesday
days/wednesday|Wednesday
days/thursday|Thursday
days/friday|Friday
days/saturday|Saturday
days/sunday|Sunday
months/january|January
months/february|February
months/march|March
months/april|April
months/may|May
months/june|June
months/july|July
months/august|August
months/september|September
months/october|October
months/november|November
months/december|December
ordinals/1st|first
ordinals/2nd|second
ordinals/3rd|third
ordinals/4th|fourth
ordinals/5th|fifth
ordinals/6th|sixth
ordinals/7th|seventh
ordinals/8th|eighth
ordinals/9th|ninth
ordinals/10th|tenth
ordinals/11th|eleventh
ordinals/12th|twelfth
ordinals/13th|thirteenth
ordinals/14th|fourteenth
ordinals/15th|fifteenth
ordinals/16th|sixteenth
ordinals/17th|seventeenth
ordinals/18th|eighteenth
ordinals/19th|nineteenth
ordinals/20th|twentieth
ordinals/21st|twenty first
ordinals/22nd|twenty second
ordinals/23rd|twenty third
ordinals/24th|twenty fourth
ordinals/25th|twenty fifth
ordinals/26th|twenty sixth
ordinals/27th|twenty seventh
ordinals/28th|twenty eighth
ordinals/29th|twenty ninth
ordinals/30th|thirtieth
ordinals/31st|thirty first
EOF
    make_beep en
    to_ogg en goodbye "Goodbye."
}

# Russian. Words that change with the number next to them come in forms:
# NAME (one: 1, 21, 31...), NAME-few (2-4, 22-24...), NAME-many (5-20, 25...);
# digits/1-f, digits/2-f are feminine (for thousand, minute), digits/1-n
# neuter (for message). Months are genitive and ordinals neuter, as a date
# is said ("первое января").
gen_ru() {
    rm -rf "$here/ru"
    mkdir -p "$here/ru"
    speak_table ru <<'EOF'
greeting-intro|Абонент с номером
is-busy|занят.
is-unavailable|недоступен.
leave-message|Пожалуйста, оставьте сообщение после сигнала. Закончив, положите трубку или нажмите решётку.
message-saved|Ваше сообщение сохранено. До свидания.
mailbox-full|К сожалению, почтовый ящик переполнен. До свидания.
max-length|Достигнута максимальная длина сообщения.
cannot-take|К сожалению, сейчас сообщение не может быть принято. Пожалуйста, перезвоните позже.
review-message|Отправить сообщение — 1. Прослушать — 2. Записать заново — 3. Пометить как срочное — 4.
marked-urgent|Сообщение помечено как срочное.
urgent-removed|Отметка о срочности снята.
transferring|Пожалуйста, подождите. Соединяю.
transfer-failed|К сожалению, перевести вызов невозможно.
digits/0|ноль
digits/1|один
digits/1-f|одна
digits/1-n|одно
digits/2|два
digits/2-f|две
digits/3|три
digits/4|четыре
digits/5|пять
digits/6|шесть
digits/7|семь
digits/8|восемь
digits/9|девять
star|звёздочка
pound|решётка
numbers/10|десять
numbers/11|одиннадцать
numbers/12|двенадцать
numbers/13|тринадцать
numbers/14|четырнадцать
numbers/15|пятнадцать
numbers/16|шестнадцать
numbers/17|семнадцать
numbers/18|восемнадцать
numbers/19|девятнадцать
numbers/20|двадцать
numbers/30|тридцать
numbers/40|сорок
numbers/50|пятьдесят
numbers/60|шестьдесят
numbers/70|семьдесят
numbers/80|восемьдесят
numbers/90|девяносто
numbers/100|сто
numbers/200|двести
numbers/300|триста
numbers/400|четыреста
numbers/500|пятьсот
numbers/600|шестьсот
numbers/700|семьсот
numbers/800|восемьсот
numbers/900|девятьсот
numbers/thousand|тысяча
numbers/thousand-few|тысячи
numbers/thousand-many|тысяч
numbers/million|миллион
numbers/million-few|миллиона
numbers/million-many|миллионов
numbers/billion|миллиард
numbers/billion-few|миллиарда
numbers/billion-many|миллиардов
enter-mailbox|Пожалуйста, введите номер почтового ящика и нажмите решётку.
enter-pin|Пожалуйста, введите пароль и нажмите решётку.
login-incorrect|Неверный вход.
mailbox-locked|Этот почтовый ящик временно заблокирован. До свидания.
please-wait|Пожалуйста, подождите.
try-later|Система занята. Пожалуйста, позвоните позже. До свидания.
you-have|У вас
new|новое
new-few|новых
new-many|новых
old|старое
old-few|старых
old-many|старых
message|сообщение
messages|сообщений
messages-few|сообщения
messages-many|сообщений
no-messages|нет сообщений
and|и
main-menu|Чтобы прослушать новые сообщения, нажмите 1. Сменить папку — 2. Настройки ящика — 0. Справка — звёздочка. Выход — решётка.
message-number|Сообщение
first-message|Первое сообщение.
last-message|Больше сообщений нет.
no-more-messages|Больше сообщений нет.
message-menu|Конверт — 3. Предыдущее сообщение — 4. Повторить — 5. Следующее — 6. Удалить — 7. Переслать — 8. Сохранить — 9. Главное меню — решётка.
deleted|Сообщение удалено.
undeleted|Удаление отменено.
saved|Сообщение сохранено.
forward-enter-mailbox|Введите номер ящика для пересылки и нажмите решётку.
forwarded|Сообщение переслано.
invalid-mailbox|Неверный номер ящика.
received-at|Получено
from|От
unknown-caller|неизвестного абонента
options-menu|Записать приветствие при недоступности — 1. При занятости — 2. Записать имя — 3. Временное приветствие — 4. Сменить пароль — 5. Назад — звёздочка.
record-after-tone|Говорите после сигнала. Закончив, нажмите решётку.
review-recording|Принять — 1. Прослушать — 2. Записать заново — 3.
greeting-saved|Приветствие сохранено.
temp-greeting-menu|Записать временное приветствие — 1. Удалить его — 2.
temp-greeting-erased|Временное приветствие удалено.
enter-new-pin|Введите новый пароль и нажмите решётку.
reenter-pin|Введите его ещё раз.
pin-mismatch|Пароли не совпадают.
pin-invalid|Такой пароль не подходит. Нужно не меньше четырёх цифр, не одинаковых и не подряд.
pin-changed|Пароль изменён.
invalid-option|Неверный выбор.
not-understood|Извините, не понял.
help|Во время прослушивания нажмите 3 — конверт, 5 — повтор, 6 — следующее, 7 — удалить, 9 — сохранить. Решётка — назад, звёздочка — эта справка.
folders-menu|Новые сообщения — 0. Старые — 1. Работа — 2. Семья — 3. Друзья — 4. Отмена — решётка.
save-to-folder|В какую папку сохранить сообщение?
saved-in|Сообщение сохранено в папку
folder-new|новые
folder-old|старые
folder-work|работа
folder-family|семья
folder-friends|друзья
folder-5|номер пять
folder-6|номер шесть
folder-7|номер семь
folder-8|номер восемь
folder-9|номер девять
some-unreachable|Некоторые сообщения сейчас недоступны.
cannot-now|Сейчас это сделать нельзя. Попробуйте позже.
at|в
today|сегодня
yesterday|вчера
hour|час
hour-few|часа
hour-many|часов
minute|минута
minute-few|минуты
minute-many|минут
days/monday|понедельник
days/tuesday|вторник
days/wednesday|среда
days/thursday|четверг
days/friday|пятница
days/saturday|суббота
days/sunday|воскресенье
months/january|января
months/february|февраля
months/march|марта
months/april|апреля
months/may|мая
months/june|июня
months/july|июля
months/august|августа
months/september|сентября
months/october|октября
months/november|ноября
months/december|декабря
ordinals/1st|первое
ordinals/2nd|второе
ordinals/3rd|третье
ordinals/4th|четвёртое
ordinals/5th|пятое
ordinals/6th|шестое
ordinals/7th|седьмое
ordinals/8th|восьмое
ordinals/9th|девятое
ordinals/10th|десятое
ordinals/11th|одиннадцатое
ordinals/12th|двенадцатое
ordinals/13th|тринадцатое
ordinals/14th|четырнадцатое
ordinals/15th|пятнадцатое
ordinals/16th|шестнадцатое
ordinals/17th|семнадцатое
ordinals/18th|восемнадцатое
ordinals/19th|девятнадцатое
ordinals/20th|двадцатое
ordinals/21st|двадцать первое
ordinals/22nd|двадцать второе
ordinals/23rd|двадцать третье
ordinals/24th|двадцать четвёртое
ordinals/25th|двадцать пятое
ordinals/26th|двадцать шестое
ordinals/27th|двадцать седьмое
ordinals/28th|двадцать восьмое
ordinals/29th|двадцать девятое
ordinals/30th|тридцатое
ordinals/31st|тридцать первое
EOF
    make_beep ru
    to_ogg ru goodbye "До свидания."
}

langs=("$@")
((${#langs[@]})) || langs=(en ru)
for lang in "${langs[@]}"; do
    case "$lang" in
        en) gen_en ;;
        ru) gen_ru ;;
        *) echo "generate.sh: unknown language '$lang' (known: en ru)" >&2; exit 2 ;;
    esac
    n=$(find "$here/$lang" -type f | wc -l)
    size=$(du -sh "$here/$lang" | cut -f1)
    echo "prompts/$lang: $n files, $size"
done
