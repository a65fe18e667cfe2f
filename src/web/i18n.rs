//! The web inbox's words in English and Russian.

/// A language of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
}

impl Lang {
    /// The language of a mailbox setting or `ext.language` (`ru`, `ru-RU`,
    /// ...); anything but Russian is English.
    pub fn of(code: &str) -> Lang {
        let c = code.trim().to_ascii_lowercase();
        if c == "ru" || c.starts_with("ru-") || c.starts_with("ru_") {
            Lang::Ru
        } else {
            Lang::En
        }
    }

    /// The `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
        }
    }

    /// The words.
    pub fn t(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::Ru => &RU,
        }
    }
}

/// Every text of the pages.
pub struct Texts {
    pub app: &'static str,
    pub login_title: &'static str,
    pub mailbox_label: &'static str,
    pub mailbox_hint: &'static str,
    pub pin_label: &'static str,
    pub login_button: &'static str,
    pub login_error: &'static str,
    pub inbox: &'static str,
    pub folder_new: &'static str,
    pub folder_old: &'static str,
    pub folder_work: &'static str,
    pub folder_family: &'static str,
    pub folder_friends: &'static str,
    /// "Folder" before a number: the folders Cust1..Cust5, named by their
    /// phone keys 5..9.
    pub folder_numbered: &'static str,
    pub greetings: &'static str,
    pub settings: &'static str,
    pub logout: &'static str,
    pub unknown_caller: &'static str,
    pub urgent: &'static str,
    pub received: &'static str,
    pub duration: &'static str,
    pub download: &'static str,
    pub mark_heard: &'static str,
    pub mark_new: &'static str,
    pub move_to: &'static str,
    pub move_button: &'static str,
    pub delete: &'static str,
    pub forward_to: &'static str,
    pub forward_button: &'static str,
    pub deleted: &'static str,
    pub undo: &'static str,
    pub empty: &'static str,
    pub note_heard: &'static str,
    pub note_moved: &'static str,
    pub note_deleted: &'static str,
    pub note_forwarded: &'static str,
    pub note_forward_failed: &'static str,
    pub note_greeting_saved: &'static str,
    pub note_greeting_deleted: &'static str,
    pub note_greeting_failed: &'static str,
    pub greeting_unavail: &'static str,
    pub greeting_busy: &'static str,
    pub greeting_temp: &'static str,
    pub greeting_name: &'static str,
    pub not_recorded: &'static str,
    pub file_label: &'static str,
    pub upload: &'static str,
    pub record: &'static str,
    pub stop_record: &'static str,
    pub change_pin: &'static str,
    pub new_pin: &'static str,
    pub repeat_pin: &'static str,
    pub pin_rule: &'static str,
    pub save: &'static str,
    pub pin_changed: &'static str,
    pub pin_mismatch: &'static str,
    pub pin_not_allowed: &'static str,
    pub csrf_error: &'static str,
    pub to_login: &'static str,
    pub not_found: &'static str,
    pub passive: &'static str,
    /// Some messages are kept at a site that did not answer.
    pub partial: &'static str,
    /// A change to a message kept at a site that did not answer.
    pub site_unreachable: &'static str,
    pub failed: &'static str,
    pub back: &'static str,
}

static EN: Texts = Texts {
    app: "Voicemail",
    login_title: "Log in to your voicemail",
    mailbox_label: "Mailbox",
    mailbox_hint: "number@domain, for example 1001@example.com",
    pin_label: "PIN",
    login_button: "Log in",
    login_error: "The mailbox or PIN is not right, or logins are paused for a while. Check them and try again later.",
    inbox: "Messages",
    folder_new: "New",
    folder_old: "Old",
    folder_work: "Work",
    folder_family: "Family",
    folder_friends: "Friends",
    folder_numbered: "Folder",
    greetings: "Greetings",
    settings: "Settings",
    logout: "Log out",
    unknown_caller: "Unknown caller",
    urgent: "Urgent",
    received: "Received",
    duration: "Length",
    download: "Download",
    mark_heard: "Mark heard",
    mark_new: "Mark new",
    move_to: "Move to folder",
    move_button: "Move",
    delete: "Delete",
    forward_to: "Forward to mailbox",
    forward_button: "Forward",
    deleted: "Message deleted.",
    undo: "Undo",
    empty: "No messages in this folder.",
    note_heard: "Message marked.",
    note_moved: "Message moved.",
    note_deleted: "Message deleted.",
    note_forwarded: "Message forwarded.",
    note_forward_failed: "Not forwarded: there is no such mailbox in this domain.",
    note_greeting_saved: "Greeting saved.",
    note_greeting_deleted: "Greeting deleted.",
    note_greeting_failed: "Not saved: the file is not audio vmail can read, or it is larger than 10 MiB.",
    greeting_unavail: "When you do not answer",
    greeting_busy: "When you are busy",
    greeting_temp: "Temporary (plays instead of the others)",
    greeting_name: "Your name",
    not_recorded: "Not recorded.",
    file_label: "Audio file",
    upload: "Upload",
    record: "Record",
    stop_record: "Stop and save",
    change_pin: "Change PIN",
    new_pin: "New PIN",
    repeat_pin: "New PIN again",
    pin_rule: "4 to 16 digits, not all the same digit, not a run such as 1234 or 4321.",
    save: "Save",
    pin_changed: "Your PIN is changed.",
    pin_mismatch: "The two PINs differ.",
    pin_not_allowed: "This PIN is not allowed: 4 to 16 digits, not all the same digit, not a run such as 1234 or 4321.",
    csrf_error: "This form has expired or did not come from this site. Reload the page and try again.",
    to_login: "Log in",
    not_found: "Not found.",
    passive: "This server is on standby right now.",
    partial: "Some messages are kept at another site that cannot be reached right now; they are not shown.",
    site_unreachable: "This message is kept at another site that cannot be reached right now. Nothing was changed; try again later.",
    failed: "Something went wrong. Try again.",
    back: "Back to messages",
};

static RU: Texts = Texts {
    app: "Голосовая почта",
    login_title: "Вход в голосовую почту",
    mailbox_label: "Ящик",
    mailbox_hint: "номер@домен, например 1001@example.com",
    pin_label: "PIN-код",
    login_button: "Войти",
    login_error: "Неверный ящик или PIN-код, либо вход временно приостановлен. Проверьте их и попробуйте позже.",
    inbox: "Сообщения",
    folder_new: "Новые",
    folder_old: "Прослушанные",
    folder_work: "Работа",
    folder_family: "Семья",
    folder_friends: "Друзья",
    folder_numbered: "Папка",
    greetings: "Приветствия",
    settings: "Настройки",
    logout: "Выйти",
    unknown_caller: "Неизвестный абонент",
    urgent: "Срочное",
    received: "Получено",
    duration: "Длительность",
    download: "Скачать",
    mark_heard: "Отметить прослушанным",
    mark_new: "Отметить новым",
    move_to: "Переместить в папку",
    move_button: "Переместить",
    delete: "Удалить",
    forward_to: "Переслать в ящик",
    forward_button: "Переслать",
    deleted: "Сообщение удалено.",
    undo: "Отменить",
    empty: "В этой папке нет сообщений.",
    note_heard: "Сообщение отмечено.",
    note_moved: "Сообщение перемещено.",
    note_deleted: "Сообщение удалено.",
    note_forwarded: "Сообщение переслано.",
    note_forward_failed: "Не переслано: в этом домене нет такого ящика.",
    note_greeting_saved: "Приветствие сохранено.",
    note_greeting_deleted: "Приветствие удалено.",
    note_greeting_failed: "Не сохранено: файл не является звуком, который понимает vmail, или больше 10 МиБ.",
    greeting_unavail: "Когда вы не отвечаете",
    greeting_busy: "Когда вы заняты",
    greeting_temp: "Временное (звучит вместо остальных)",
    greeting_name: "Ваше имя",
    not_recorded: "Не записано.",
    file_label: "Аудиофайл",
    upload: "Загрузить",
    record: "Записать",
    stop_record: "Остановить и сохранить",
    change_pin: "Сменить PIN-код",
    new_pin: "Новый PIN-код",
    repeat_pin: "Новый PIN-код ещё раз",
    pin_rule: "От 4 до 16 цифр, не все цифры одинаковые, не подряд идущие, как 1234 или 4321.",
    save: "Сохранить",
    pin_changed: "PIN-код изменён.",
    pin_mismatch: "PIN-коды не совпадают.",
    pin_not_allowed: "Такой PIN-код нельзя: от 4 до 16 цифр, не все цифры одинаковые, не подряд идущие, как 1234 или 4321.",
    csrf_error: "Эта форма устарела или пришла не с этого сайта. Обновите страницу и попробуйте ещё раз.",
    to_login: "Войти",
    not_found: "Не найдено.",
    passive: "Этот сервер сейчас в резерве.",
    partial: "Часть сообщений хранится на другой площадке, которая сейчас недоступна; они не показаны.",
    site_unreachable: "Это сообщение хранится на другой площадке, которая сейчас недоступна. Ничего не изменено; попробуйте позже.",
    failed: "Что-то пошло не так. Попробуйте ещё раз.",
    back: "К сообщениям",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_codes_and_the_rest() {
        assert_eq!(Lang::of("ru"), Lang::Ru);
        assert_eq!(Lang::of("ru-RU"), Lang::Ru);
        assert_eq!(Lang::of("en"), Lang::En);
        assert_eq!(Lang::of("de"), Lang::En);
        assert_ne!(Lang::Ru.t().login_error, Lang::En.t().login_error);
    }
}
